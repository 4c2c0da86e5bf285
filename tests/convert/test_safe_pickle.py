"""``.pkl`` checkpoints are read as data: code in a pickle is refused before it runs, while the
pickles real checkpoints are made of (detectron2's model zoo, numpy 1 and 2, protocols 2 to 5,
torch tensors) read exactly as plain ``pickle.load`` reads them."""

from __future__ import annotations

import collections
import os
import pickle
import struct

import ml_collections
import numpy as np
import pytest

from ov2seg_jax.convert.readers import CheckpointFormatError, load_state_dict
from ov2seg_jax.convert.safe_pickle import UnsafePickleError, load_pickle


class _RunsCommand:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Unexpected:
    """A plain class: unpickling it would import this test module."""

    def __init__(self) -> None:
        self.value = 1


def _write(path, obj, protocol=4) -> str:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def _state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "backbone.stem.conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "backbone.stem.conv1.norm.running_mean": rng.standard_normal(4).astype(np.float32),
        "sem_seg_head.predictor.query_embed.weight": rng.standard_normal((2, 8)),  # float64
        "backbone.res2.0.num_batches_tracked": np.array(7, np.int64),
        "fortran": np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32)),
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_in_a_pickle_is_refused_before_it_runs(tmp_path, protocol):
    marker = tmp_path / "marker"
    evil = _write(
        tmp_path / "model.pkl",
        {"model": {"w": np.zeros(2), "x": _RunsCommand(f"touch {marker}")}},
        protocol,
    )
    with pytest.raises(CheckpointFormatError) as info:
        load_state_dict(evil)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{evil}: refused to load")
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux
    assert not marker.exists()
    # Also with the marker created by a plain load: the file really runs the command.
    with open(evil, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_unexpected_classes_are_refused(tmp_path):
    for obj, name in [
        ({"model": {"w": _Unexpected()}}, f"{__name__}._Unexpected"),
        ({"model": collections.Counter(a=1)}, "collections.Counter"),
        ({"model": {"w": np.ma.masked_array([1.0, 2.0])}}, "numpy.ma.core"),
        ({"model": {"w": eval}}, "builtins.eval"),
    ]:
        path = _write(tmp_path / "x.pkl", obj)
        with pytest.raises(CheckpointFormatError, match=rf"x\.pkl: refused to load: .*{name}"):
            load_state_dict(path)


def test_codecs_encode_only_with_latin1(tmp_path):
    # What protocol 2 writes for bytes, with another codec: refused inside the call.
    program = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13\x86R."
    path = tmp_path / "codec.pkl"
    path.write_bytes(program)
    with pytest.raises(UnsafePickleError, match=r"codec\.pkl: refused to load: .*'rot_13'"):
        load_pickle(str(path))
    path.write_bytes(program.replace(b"X\x06\x00\x00\x00rot_13", b"X\x06\x00\x00\x00latin1"))
    assert load_pickle(str(path)) == b"a"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_detectron2_pickles_read_as_plain_pickle_does(tmp_path, protocol):
    state = _state()
    path = _write(
        tmp_path / "model.pkl",
        {
            "model": collections.OrderedDict(state),
            "__author__": "Detectron",
            "matching_heuristics": True,
        },
        protocol,
    )
    with open(path, "rb") as f:
        plain = pickle.load(f, encoding="latin1")
    safe = load_pickle(path)
    assert safe.keys() == plain.keys() and safe["__author__"] == "Detectron"
    for k, v in state.items():
        np.testing.assert_array_equal(safe["model"][k], v)
        assert safe["model"][k].dtype == v.dtype and safe["model"][k].shape == v.shape
    got = load_state_dict(path)
    for k, v in state.items():
        want = v.astype(np.float32) if v.dtype == np.float64 else v
        np.testing.assert_array_equal(got[k], want)
        assert got[k].dtype == want.dtype


def _py2_array(a: np.ndarray) -> bytes:
    """The protocol 2 program Python 2's numpy 1 wrote for ``a``: module ``numpy.core``, the
    data as a byte string (which Python 3 reads as latin-1 text)."""
    out = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R("
    out += b"K\x01(" + b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
    out += b"cnumpy\ndtype\nU\x02" + a.dtype.str[1:].encode() + b"K\x00K\x01\x87R"
    out += b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    data = a.tobytes()
    out += b"\x89T" + struct.pack("<i", len(data)) + data + b"tb"
    return out


def test_python2_detectron2_pickle(tmp_path):
    """An old model-zoo file: Python 2 strings, numpy 1 module names, ``{"model": ..., "__author__"}``."""
    state = {
        "res2.conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 3.5,
        "res2.conv.norm.bias": np.array([0.5, -1e-3, 250.0], np.float32),
    }
    program = b"\x80\x02}(U\x05model}("
    for k, v in state.items():
        program += b"U" + bytes([len(k)]) + k.encode() + _py2_array(v)
    program += b"uU\n__author__U\tDetectronu."
    path = tmp_path / "old.pkl"
    path.write_bytes(program)
    with open(path, "rb") as f:
        plain = pickle.load(f, encoding="latin1")
    got = load_state_dict(str(path))
    assert load_pickle(str(path))["__author__"] == "Detectron"
    assert got.keys() == state.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(plain["model"][k], v)
        np.testing.assert_array_equal(got[k], v)


def test_torch_tensors_in_a_pkl(tmp_path):
    torch = pytest.importorskip("torch")
    state = _state(1)
    path = _write(
        tmp_path / "r50.pkl",
        {"model": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}},
    )
    got = load_state_dict(path)
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v.astype(np.float32) if v.dtype == np.float64 else v)
    half = _write(tmp_path / "h.pkl", {"w": torch.arange(6, dtype=torch.float16)[2:]})
    np.testing.assert_array_equal(load_state_dict(half)["w"], np.arange(2, 6, dtype=np.float32))


def test_convert_and_init_backbone_refuse_code(tmp_path):
    """The two commands that read a user's ``.pkl``: one line, exit status 2's UserError."""
    from ov2seg_jax import modes
    from ov2seg_jax.convert.backbone_init import load_pretrained_backbone

    marker = tmp_path / "marker"
    evil = _write(tmp_path / "weights.pkl", {"model": {"w": _RunsCommand(f"touch {marker}")}})
    config = ml_collections.ConfigDict(
        {"convert": {"source": evil, "infer_architecture": True, "allow_partial": False}}
    )
    with pytest.raises(modes.UserError, match=r"weights\.pkl: refused to load"):
        modes.run_convert(config, str(tmp_path))
    from configs.tiny import get_config

    with pytest.raises(CheckpointFormatError, match=r"weights\.pkl: refused to load"):
        load_pretrained_backbone(evil, get_config().model)
    assert not marker.exists()
