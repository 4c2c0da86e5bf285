"""Pretrained-backbone initialisation: timm ResNet and Swin ImageNet checkpoints onto the model.

The checkpoints are fakes with the releases' key names and shapes (random values) for small
architectures; the expected layouts are written out here, independently of the conversion table.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs import tiny
from ov2seg_jax.convert.backbone_init import (
    backbone_target_shapes,
    convert_backbone_state_dict,
    load_pretrained_backbone,
    merge_backbone,
)
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.convert.converter import ConversionError, flatten_paths
from ov2seg_jax.models.backbones.swin import PatchEmbed
from ov2seg_jax.models.ov2seg import build_backbone, build_model

TOL = dict(atol=1e-4, rtol=1e-4)
SWIN = dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), window_size=7)


# ----------------------------------------------------------------------------- fake checkpoints


def _timm_resnet_state(cfg: ml_collections.ConfigDict, num_classes: int = 11) -> dict:
    """A timm ``resnet`` (Bottleneck, expansion 4) state dict for ``cfg`` with random values."""
    rng = np.random.default_rng(0)
    sd: dict[str, np.ndarray] = {}

    def conv(key, out_ch, in_ch, k):
        std = np.sqrt(2.0 / (in_ch * k * k))
        sd[key] = (rng.standard_normal((out_ch, in_ch, k, k)) * std).astype(np.float32)

    def bn(key, ch):
        sd[f"{key}.weight"] = rng.uniform(0.5, 1.5, ch).astype(np.float32)
        sd[f"{key}.bias"] = rng.uniform(-0.2, 0.2, ch).astype(np.float32)
        sd[f"{key}.running_mean"] = rng.uniform(-0.2, 0.2, ch).astype(np.float32)
        sd[f"{key}.running_var"] = rng.uniform(0.5, 1.5, ch).astype(np.float32)
        sd[f"{key}.num_batches_tracked"] = np.array(1000, np.int64)

    conv("conv1.weight", cfg.stem_width, 3, 7)
    bn("bn1", cfg.stem_width)
    in_ch = cfg.stem_width
    for s, (n, w) in enumerate(zip(cfg.stage_sizes, cfg.widths, strict=True)):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1.weight", w, in_ch, 1)
            bn(f"{p}.bn1", w)
            conv(f"{p}.conv2.weight", w, w, 3)
            bn(f"{p}.bn2", w)
            conv(f"{p}.conv3.weight", 4 * w, w, 1)
            bn(f"{p}.bn3", 4 * w)
            if b == 0:
                conv(f"{p}.downsample.0.weight", 4 * w, in_ch, 1)
                bn(f"{p}.downsample.1", 4 * w)
            in_ch = 4 * w
    sd["fc.weight"] = rng.standard_normal((num_classes, in_ch)).astype(np.float32)
    sd["fc.bias"] = rng.standard_normal(num_classes).astype(np.float32)
    return sd


def _swin_imagenet_state(img_size: int = 224, num_classes: int = 13) -> dict:
    """The official Swin release's state dict for the ``SWIN`` sizes, random values."""
    rng = np.random.default_rng(1)
    c0, depths, heads, w = SWIN["embed_dim"], SWIN["depths"], SWIN["num_heads"], SWIN["window_size"]
    sd: dict[str, np.ndarray] = {}

    def rand(key, *shape, scale=0.1):
        sd[key] = (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(key, ch):
        sd[f"{key}.weight"] = rng.uniform(0.5, 1.5, ch).astype(np.float32)
        rand(f"{key}.bias", ch)

    def linear(key, out_ch, in_ch, bias=True):
        rand(f"{key}.weight", out_ch, in_ch, scale=in_ch**-0.5)
        if bias:
            rand(f"{key}.bias", out_ch)

    rand("patch_embed.proj.weight", c0, 3, 4, 4, scale=0.2)
    rand("patch_embed.proj.bias", c0)
    norm("patch_embed.norm", c0)
    grid = img_size // 4
    for s, depth in enumerate(depths):
        dim = c0 * 2**s
        for b in range(depth):
            p = f"layers.{s}.blocks.{b}"
            norm(f"{p}.norm1", dim)
            rand(f"{p}.attn.relative_position_bias_table", (2 * w - 1) ** 2, heads[s])
            sd[f"{p}.attn.relative_position_index"] = rng.integers(
                0, (2 * w - 1) ** 2, (w * w, w * w)
            ).astype(np.int64)
            linear(f"{p}.attn.qkv", 3 * dim, dim)
            linear(f"{p}.attn.proj", dim, dim)
            norm(f"{p}.norm2", dim)
            linear(f"{p}.mlp.fc1", 4 * dim, dim)
            linear(f"{p}.mlp.fc2", dim, 4 * dim)
            if b % 2 == 1 and grid > w:  # shifted block at the training resolution
                sd[f"{p}.attn_mask"] = np.zeros(((grid // w) ** 2, w * w, w * w), np.float32)
        if s < len(depths) - 1:
            norm(f"layers.{s}.downsample.norm", 4 * dim)
            linear(f"layers.{s}.downsample.reduction", 2 * dim, 4 * dim, bias=False)
        grid //= 2
    norm("norm", c0 * 8)
    linear("head", num_classes, c0 * 8)
    return sd


def _torch_save(sd: dict, path, wrap: str | None = "model") -> str:
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    torch.save({wrap: tensors} if wrap else tensors, path)
    return str(path)


def _resnet_cfg() -> ml_collections.ConfigDict:
    return tiny.get_config().model


def _swin_cfg() -> ml_collections.ConfigDict:
    cfg = tiny.get_config().model
    cfg.backbone = ml_collections.ConfigDict(
        dict(name="swin", drop_path_rate=0.0, attention_implementation="auto", **SWIN)
    )
    return cfg


@pytest.fixture(scope="module")
def resnet_state() -> dict:
    return _timm_resnet_state(_resnet_cfg().backbone)


@pytest.fixture(scope="module")
def resnet_converted(resnet_state, tmp_path_factory):
    path = _torch_save(resnet_state, tmp_path_factory.mktemp("r50") / "resnet50_miil_21k.pth")
    return load_pretrained_backbone(path, _resnet_cfg())


@pytest.fixture(scope="module")
def swin_state() -> dict:
    return _swin_imagenet_state()


@pytest.fixture(scope="module")
def swin_converted(swin_state, tmp_path_factory):
    path = _torch_save(swin_state, tmp_path_factory.mktemp("swin") / "swin_22k.pth")
    return load_pretrained_backbone(path, _swin_cfg())


def _zeros_like_model(cfg) -> dict:
    """Variables of the right structure (zeros) without running the model."""
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), abstract_variables(cfg))


# ----------------------------------------------------------------------------- ResNet


def test_resnet_values_land_at_their_paths(resnet_state, resnet_converted):
    bb, report = resnet_converted
    assert report.ok, report.format()
    assert set(bb) == {"params", "frozen"}
    # OIHW -> HWIO
    np.testing.assert_array_equal(
        bb["params"]["conv1"]["kernel"], resnet_state["conv1.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        bb["params"]["layer3_0"]["downsample_conv"]["kernel"][0, 0],
        resnet_state["layer3.0.downsample.0.weight"][:, :, 0, 0].T,
    )
    frozen = bb["frozen"]["layer2_0"]["bn2"]
    np.testing.assert_array_equal(frozen["mean"], resnet_state["layer2.0.bn2.running_mean"])
    np.testing.assert_array_equal(frozen["var"], resnet_state["layer2.0.bn2.running_var"])
    np.testing.assert_array_equal(frozen["scale"], resnet_state["layer2.0.bn2.weight"])
    np.testing.assert_array_equal(
        bb["frozen"]["layer4_0"]["downsample_bn"]["bias"],
        resnet_state["layer4.0.downsample.1.bias"],
    )
    # Every source key accounted for: 2 classifier + one counter per norm skipped, the rest used.
    n_norms = sum(k.endswith("running_mean") for k in resnet_state)
    assert sorted(k for k in report.ignored_source_keys if k.startswith("fc.")) == [
        "fc.bias",
        "fc.weight",
    ]
    assert len(report.ignored_source_keys) == 2 + n_norms
    assert "classifier" in report.ignored_source_keys["fc.weight"]
    assert report.converted == len(resnet_state) - 2 - n_norms
    assert report.kept_at_init == {}


def test_resnet_subtree_is_exactly_the_models(resnet_converted):
    bb, _ = resnet_converted
    got = {f"{c}/backbone/{k}": v.shape for c in bb for k, v in flatten_paths(bb[c]).items()}
    assert got == backbone_target_shapes(_resnet_cfg())


def _torch_resnet(sd: dict, x: torch.Tensor, stage_sizes) -> list[torch.Tensor]:
    """timm's ResNet forward (frozen BN, eps 1e-5), returning the four stage outputs."""
    t = {k: torch.from_numpy(v) for k, v in sd.items()}

    def bn(y, p):
        return F.batch_norm(
            y, t[f"{p}.running_mean"], t[f"{p}.running_var"], t[f"{p}.weight"], t[f"{p}.bias"],
            training=False, eps=1e-5,
        )  # fmt: skip

    y = F.relu(bn(F.conv2d(x, t["conv1.weight"], stride=2, padding=3), "bn1"))
    y = F.max_pool2d(y, 3, stride=2, padding=1)
    outs = []
    for s, n in enumerate(stage_sizes):
        for b in range(n):
            p, stride = f"layer{s + 1}.{b}", 2 if s > 0 and b == 0 else 1
            z = F.relu(bn(F.conv2d(y, t[f"{p}.conv1.weight"]), f"{p}.bn1"))
            z = F.conv2d(z, t[f"{p}.conv2.weight"], stride=stride, padding=1)
            z = bn(F.conv2d(F.relu(bn(z, f"{p}.bn2")), t[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in t:
                y = bn(
                    F.conv2d(y, t[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1"
                )
            y = F.relu(z + y)
        outs.append(y)
    return outs


def test_merged_resnet_matches_torch_forward(resnet_state, resnet_converted):
    """Merged into a freshly initialised model, the backbone computes what timm's ResNet does."""
    cfg = _resnet_cfg()
    model = build_model(cfg)
    fresh = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 32)))
    before = jax.tree_util.tree_map(np.asarray, fresh)
    merged = merge_backbone(fresh, resnet_converted[0])

    # the input is unchanged, the heads are untouched, the backbone is the converted one
    jax.tree_util.tree_map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, fresh))
    assert merged["params"]["pixel_decoder"] is fresh["params"]["pixel_decoder"]
    assert merged["params"]["predictor"] is fresh["params"]["predictor"]
    np.testing.assert_array_equal(
        merged["frozen"]["backbone"]["bn1"]["var"], resnet_state["bn1.running_var"]
    )
    assert merged["params"]["backbone"]["conv1"]["kernel"].dtype == jnp.float32

    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    ref = _torch_resnet(resnet_state, torch.from_numpy(x), cfg.backbone.stage_sizes)
    bb_vars = {c: merged[c]["backbone"] for c in ("params", "frozen")}
    feats = build_backbone(cfg.backbone).apply(bb_vars, jnp.asarray(x.transpose(0, 2, 3, 1)))
    for i, r in enumerate(ref):
        np.testing.assert_allclose(
            np.asarray(feats[f"res{i + 2}"]), r.numpy().transpose(0, 2, 3, 1), **TOL
        )


def test_original_pkl_and_wrapped_pth_read_alike(resnet_state, resnet_converted, tmp_path):
    """The original's ``resnet50_miil_21k.pkl`` (torch tensors pickled under 'model'), and the
    download's ``.pth`` under 'state_dict' or with a DataParallel prefix, give the same weights."""
    want = flatten_paths(resnet_converted[0])
    pkl = tmp_path / "resnet50_miil_21k.pkl"
    with open(pkl, "wb") as f:
        tensors = {k: torch.from_numpy(v) for k, v in resnet_state.items()}
        pickle.dump({"model": tensors, "__author__": "third_party", "matching_heuristics": 1}, f)
    wrapped = _torch_save(resnet_state, tmp_path / "sd.pth", wrap="state_dict")
    prefixed = _torch_save(
        {f"module.{k}": v for k, v in resnet_state.items()}, tmp_path / "m.pth", wrap=None
    )
    for path in (str(pkl), wrapped, prefixed):
        got, report = load_pretrained_backbone(path, _resnet_cfg())
        assert report.ok
        got = flatten_paths(got)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{path}: {k}")


# ----------------------------------------------------------------------------- Swin


def test_swin_values_land_and_output_norms_stay_at_init(swin_state, swin_converted):
    bb, report = swin_converted
    assert report.ok, report.format()
    assert set(bb) == {"params"}
    p = bb["params"]
    np.testing.assert_array_equal(
        p["patch_embed"]["proj"]["kernel"],
        swin_state["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
    )
    blk = p["layers_2"]["blocks_1"]
    np.testing.assert_array_equal(
        blk["attn"]["qkv"]["kernel"], swin_state["layers.2.blocks.1.attn.qkv.weight"].T
    )
    np.testing.assert_array_equal(
        blk["attn"]["relative_position_bias_table"],
        swin_state["layers.2.blocks.1.attn.relative_position_bias_table"],
    )
    np.testing.assert_array_equal(
        blk["mlp"]["fc2"]["bias"], swin_state["layers.2.blocks.1.mlp.fc2.bias"]
    )
    np.testing.assert_array_equal(
        p["layers_1"]["downsample"]["reduction"]["kernel"],
        swin_state["layers.1.downsample.reduction.weight"].T,
    )
    for i in range(4):
        np.testing.assert_array_equal(p[f"norm{i}"]["scale"], np.ones(32 * 2**i, np.float32))
        np.testing.assert_array_equal(p[f"norm{i}"]["bias"], np.zeros(32 * 2**i, np.float32))
    kept = {f"params/backbone/norm{i}/{leaf}" for i in range(4) for leaf in ("scale", "bias")}
    assert set(report.kept_at_init) == kept
    assert all("initialisation" in why for why in report.kept_at_init.values())
    assert "params/backbone/norm3/scale" in report.format()
    ignored = report.ignored_source_keys
    assert {"norm.weight", "norm.bias", "head.weight", "head.bias"} <= ignored.keys()
    assert "layers.2.blocks.1.attn_mask" in ignored
    assert "layers.0.blocks.0.attn.relative_position_index" in ignored
    assert report.converted + len(ignored) == len(swin_state)


def test_swin_patch_embed_matches_torch(swin_state, swin_converted):
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 40)).astype(np.float32)
    t = {k: torch.from_numpy(v) for k, v in swin_state.items() if k.startswith("patch_embed.")}
    y = F.conv2d(torch.from_numpy(x), t["patch_embed.proj.weight"], t["patch_embed.proj.bias"], 4)
    ref = F.layer_norm(
        y.permute(0, 2, 3, 1), (32,), t["patch_embed.norm.weight"], t["patch_embed.norm.bias"], 1e-5
    )
    merged = merge_backbone(_zeros_like_model(_swin_cfg()), swin_converted[0])
    got = PatchEmbed(32).apply(
        {"params": merged["params"]["backbone"]["patch_embed"]},
        jnp.asarray(x.transpose(0, 2, 3, 1)),
    )
    np.testing.assert_allclose(np.asarray(got), ref.numpy(), **TOL)


# ----------------------------------------------------------------------------- errors


def _error(state, cfg) -> str:
    with pytest.raises(ConversionError) as e:
        convert_backbone_state_dict(state, cfg, source="r50.pth")
    return str(e.value)


def test_missing_key_is_named(resnet_state):
    state = dict(resnet_state)
    del state["layer2.0.conv2.weight"]
    msg = _error(state, _resnet_cfg())
    assert "r50.pth" in msg and "layer2.0.conv2.weight" in msg
    assert "params/backbone/layer2_0/conv2/kernel" in msg


def test_extra_key_is_named(resnet_state):
    state = dict(resnet_state, **{"layer5.0.conv1.weight": np.zeros((4, 4, 1, 1), np.float32)})
    assert "layer5.0.conv1.weight" in _error(state, _resnet_cfg())


def test_misshaped_key_is_named(resnet_state):
    state = dict(resnet_state, **{"layer1.0.bn3.running_var": np.ones(7, np.float32)})
    msg = _error(state, _resnet_cfg())
    assert "layer1.0.bn3.running_var (7,)" in msg and "(32,)" in msg


def test_swin_window_mismatch_is_named(swin_state):
    cfg = _swin_cfg()
    cfg.backbone.window_size = 12  # a window-7 checkpoint for a window-12 model
    msg = _error(swin_state, cfg)
    assert "relative_position_bias_table" in msg and "(169, 1)" in msg and "(529, 1)" in msg


def test_wrong_format_is_named(swin_state, resnet_state):
    msg = _error(swin_state, _resnet_cfg())
    assert "not a timm ResNet state dict" in msg and "'conv1.weight'" in msg
    msg = _error(resnet_state, _swin_cfg())
    assert "not a Swin ImageNet state dict" in msg


def test_merge_rejects_mismatched_trees(resnet_converted):
    fresh = _zeros_like_model(_resnet_cfg())
    bb = jax.tree_util.tree_map(np.copy, resnet_converted[0])
    bb["params"]["conv1"]["kernel"] = np.zeros((7, 7, 3, 5), np.float32)
    with pytest.raises(ConversionError, match=r"params/backbone/conv1/kernel: pretrained shape"):
        merge_backbone(fresh, bb)
    bb = jax.tree_util.tree_map(np.copy, resnet_converted[0])
    del bb["frozen"]["bn1"]["mean"]
    bb["params"]["extra"] = {"kernel": np.zeros(3, np.float32)}
    with pytest.raises(ConversionError) as e:
        merge_backbone(fresh, bb)
    assert "frozen/backbone/bn1/mean: missing" in str(e.value)
    assert "params/backbone/extra/kernel: not a leaf of the model" in str(e.value)
    with pytest.raises(ConversionError, match="collection 'frozen'"):
        merge_backbone(fresh, {"params": resnet_converted[0]["params"]})


def test_train_init_fn_puts_the_swin_checkpoint_into_fresh_variables(swin_state, tmp_path):
    """--config.train.init_backbone as the trainer uses it: fresh variables of the whole model,
    the backbone replaced by the checkpoint's values, everything else left as initialised."""
    from ov2seg_jax.train.run import backbone_init_fn

    config = tiny.get_config()
    config.model = _swin_cfg()
    config.train.init_backbone = _torch_save(swin_state, tmp_path / "swin_22k.pth")
    fresh = _zeros_like_model(config.model)
    merged = backbone_init_fn(config)(fresh)
    params = merged["params"]
    np.testing.assert_array_equal(
        params["backbone"]["patch_embed"]["proj"]["kernel"],
        swin_state["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
    )
    for name in ("pixel_decoder", "predictor"):  # the head keeps its initial values
        for leaf in jax.tree_util.tree_leaves(params[name]):
            assert not np.any(np.asarray(leaf))
    assert backbone_init_fn(tiny.get_config()) is None  # no checkpoint configured
