"""CLIP text encoders (Flax, and transformers' PyTorch one) and the zero-shot classifier builder.

:func:`build_text_classifier` turns category names into the ``(C, D)`` float32 matrix the model's
open-vocabulary classifier takes (the layout of the original's ``fg_bg_5_10_*_ens.npy``: one
L2-normalised row per category). Every cleaned name is put into every prompt template; each prompt
embedding is L2-normalised, the embeddings are averaged over the templates and the mean is
L2-normalised again.

Two encoders compute the same thing from the same Hugging Face CLIP checkpoint (a local
directory, or a hub id found in the hub cache or downloaded where the hub is reachable), both
tokenising with transformers' CLIP tokenizer:

* :class:`FlaxClipTextEncoder` (the default, ``encoder="flax"``): the Flax text tower of
  :mod:`~ov2seg_jax.vocabulary.flax_clip`, weights read from ``model.safetensors`` by
  :mod:`~ov2seg_jax.vocabulary.clip_checkpoint`. No PyTorch.
* :class:`ClipTextEncoder` (``encoder="torch"``): ``transformers.CLIPTextModelWithProjection``
  on CPU in float32 under ``torch.inference_mode``; kept as a cross-check; needs torch.

Both give the same classifier (to float32 rounding), so they share the cache key: a classifier
cached by one is served to the other. torch, transformers and flax are imported lazily, so
reading vocabularies and cached classifiers needs none of them. Loading reads data only: no
repository code (``trust_remote_code=False``), weights from safetensors or else through torch's
``weights_only`` loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ov2seg_jax.vocabulary.cache import cache_key as make_cache_key
from ov2seg_jax.vocabulary.cache import load_cached, save_cached
from ov2seg_jax.vocabulary.names import load_vocabulary, prepare_names
from ov2seg_jax.vocabulary.templates import DEFAULT_TEMPLATES, validate_templates

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_BATCH_SIZE = 256

# Files whose contents decide what a local model directory computes: hashed into its identity.
_TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _looks_like_local_path(source: str) -> bool:
    return os.path.isabs(source) or source.startswith(("~", "./", "../")) or source in {".", ".."}


def _load_failure(source: str, exc: BaseException | None = None) -> OSError:
    reason = f" ({type(exc).__name__}: {str(exc).strip().rstrip('.')})" if exc is not None else ""
    refused = re.search(r"unsupported GLOBAL (\S+)", str(exc or ""))
    if refused:  # torch's weights_only loader met code; its own text suggests turning it off
        return OSError(
            f"refused to load the CLIP text encoder from {source!r}: its torch weights file "
            f"refers to {refused.group(1)}, not only tensors (loading it could run code); use "
            "a safetensors or plain-tensor checkpoint"
        )
    return OSError(
        f"could not load the CLIP text encoder from {source!r}{reason}. It must be a local "
        "directory holding a transformers CLIP checkpoint (config.json, weights and tokenizer "
        "files, as written by save_pretrained); a hub id only works on a machine that can reach "
        "the Hugging Face hub or already has the model in its hub cache."
    )


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_identity(clip_model: str | os.PathLike[str]) -> str:
    """A string identifying what ``clip_model`` computes, without loading its weights.

    For a local directory: its absolute path, the sha256 of ``config.json`` and of the tokenizer
    files, and the name, size and modification time of each weight file (hashing multi-hundred-MB
    weights on every call would cost more than it saves). For a hub id: the id and the sha256 of
    its text config, read through ``transformers`` (from the hub cache or the network).

    Raises:
        OSError: naming ``clip_model`` if it is neither a usable directory nor a loadable hub id.
    """
    source = os.fspath(clip_model)
    local = os.path.expanduser(source)
    if os.path.isdir(local):
        config_path = os.path.join(local, "config.json")
        if not os.path.isfile(config_path):
            raise _load_failure(source, FileNotFoundError(f"no config.json in {local!r}"))
        parts: dict[str, Any] = {
            "kind": "dir",
            "path": os.path.abspath(local),
            "config": _file_sha256(config_path),
        }
        for name in sorted(os.listdir(local)):
            full = os.path.join(local, name)
            if name in _TOKENIZER_FILES:
                parts[name] = _file_sha256(full)
            elif name.endswith(_WEIGHT_SUFFIXES):
                stat = os.stat(full)
                parts[name] = [stat.st_size, stat.st_mtime_ns]
        return json.dumps(parts, sort_keys=True)
    if _looks_like_local_path(source):
        raise _load_failure(source, FileNotFoundError(f"no directory {local!r}"))
    try:
        from transformers import CLIPTextConfig

        config = CLIPTextConfig.from_pretrained(source)
    except Exception as exc:  # transformers raises many types here; report them all the same way
        raise _load_failure(source, exc) from exc
    config_hash = hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()
    return json.dumps({"kind": "hub", "id": source, "config": config_hash}, sort_keys=True)


class ClipTextEncoder:
    """A CLIP text tower with projection, returning L2-normalised prompt embeddings.

    Args:
        clip_model: local directory or hub id of a transformers CLIP checkpoint (a full ``CLIPModel``
            checkpoint works too: only its text tower and projection are loaded).

    Raises:
        OSError: naming ``clip_model`` if the tokenizer or model cannot be loaded.
        ImportError: if torch is not installed.
    """

    def __init__(self, clip_model: str | os.PathLike[str] = DEFAULT_CLIP_MODEL) -> None:
        source = os.fspath(clip_model)
        local = os.path.expanduser(source)
        if not os.path.isdir(local) and _looks_like_local_path(source):
            raise _load_failure(source, FileNotFoundError(f"no directory {local!r}"))
        target = local if os.path.isdir(local) else source
        try:
            import torch
        except ImportError as exc:
            raise ImportError(
                "the PyTorch CLIP text encoder needs torch: pip install 'ov2seg-jax[torch]' "
                "(the default Flax encoder does not)"
            ) from exc
        import transformers

        verbosity = transformers.logging.get_verbosity()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                target, trust_remote_code=False
            )
            config = transformers.AutoConfig.from_pretrained(target, trust_remote_code=False)
            if isinstance(config, transformers.CLIPConfig):
                # A full CLIPModel checkpoint: its projection width lives on the outer config.
                text_config = config.text_config
                text_config.projection_dim = config.projection_dim
                config = text_config
            # The load report of a full CLIPModel lists every vision weight as unexpected; keep
            # it quiet and check the text weights ourselves below.
            transformers.logging.set_verbosity_error()
            model, info = transformers.CLIPTextModelWithProjection.from_pretrained(
                target,
                config=config,
                dtype=torch.float32,
                output_loading_info=True,
                weights_only=True,
                trust_remote_code=False,
            )
        except Exception as exc:  # transformers raises many types; report them all the same way
            raise _load_failure(source, exc) from exc
        finally:
            transformers.logging.set_verbosity(verbosity)
        missing = sorted(info.get("missing_keys", ()))
        mismatched = info.get("mismatched_keys", ())
        if missing or mismatched:
            raise _load_failure(
                source,
                ValueError(
                    "the checkpoint is not a CLIP text model with projection "
                    f"(missing weights: {missing[:5]}, mismatched: {list(mismatched)[:5]})"
                ),
            )
        self.model = model.to("cpu").eval()
        self.source = source
        self.max_length = int(self.model.config.max_position_embeddings)

    @property
    def embed_dim(self) -> int:
        """Width of the projected text embeddings."""
        return int(self.model.config.projection_dim)

    def encode(self, prompts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Embed ``prompts``; returns ``(len(prompts), D)`` float32 rows of unit L2 norm."""
        import torch

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            out = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            return out.text_embeds.to(torch.float32).cpu().numpy()

        with torch.inference_mode():
            return encode_in_batches(
                self.tokenizer, prompts, batch_size, self.max_length, self.embed_dim, run
            )


class FlaxClipTextEncoder:
    """The CLIP text tower with projection in Flax, returning L2-normalised prompt embeddings.

    Same interface as :class:`ClipTextEncoder`; needs no torch.

    Args:
        clip_model: local directory or hub id of a Hugging Face CLIP checkpoint (full
            ``CLIPModel`` or text model with projection) with ``model.safetensors``.

    Raises:
        OSError: naming ``clip_model`` if the tokenizer, config or weights cannot be loaded.
    """

    def __init__(self, clip_model: str | os.PathLike[str] = DEFAULT_CLIP_MODEL) -> None:
        source = os.fspath(clip_model)
        local = os.path.expanduser(source)
        if not os.path.isdir(local) and _looks_like_local_path(source):
            raise _load_failure(source, FileNotFoundError(f"no directory {local!r}"))
        import jax
        import transformers

        from ov2seg_jax.vocabulary.clip_checkpoint import load_params, read_dims, snapshot_dir
        from ov2seg_jax.vocabulary.flax_clip import ClipTextTower

        try:
            directory = local if os.path.isdir(local) else snapshot_dir(source)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
            self.dims = read_dims(directory)
            params = load_params(directory, self.dims)
        except Exception as exc:  # transformers/hub/safetensors raise many types; one message
            raise _load_failure(source, exc) from exc
        self.params = {"params": jax.device_put(params)}
        self.source = source
        self.max_length = int(self.dims.max_position_embeddings)
        self._apply = jax.jit(ClipTextTower(self.dims).apply)

    @property
    def embed_dim(self) -> int:
        """Width of the projected text embeddings."""
        return int(self.dims.projection_dim)

    def encode(self, prompts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Embed ``prompts``; returns ``(len(prompts), D)`` float32 rows of unit L2 norm.

        Batches are padded to a multiple of 8 tokens (the causal mask makes the padding
        invisible to the end-of-text token), so few shapes are compiled."""
        pad_id = self.tokenizer.pad_token_id or 0  # what the tokenizer pads with

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            extra = min(-(-ids.shape[1] // 8) * 8, self.max_length) - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id)
            mask = np.pad(mask, ((0, 0), (0, extra)))
            return np.asarray(self._apply(self.params, ids, mask), np.float32)

        return encode_in_batches(
            self.tokenizer, prompts, batch_size, self.max_length, self.embed_dim, run
        )


def encode_in_batches(
    tokenizer,
    prompts: Sequence[str],
    batch_size: int,
    max_length: int,
    embed_dim: int,
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Tokenise ``prompts`` ``batch_size`` at a time (padded to the batch's longest, truncated
    at ``max_length``), embed each batch with ``run(input_ids, attention_mask)`` and return the
    ``(len(prompts), embed_dim)`` float32 rows L2-normalised."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            list(prompts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        chunks.append(run(batch["input_ids"], batch["attention_mask"]))
    if not chunks:
        return np.zeros((0, embed_dim), np.float32)
    return _l2_normalise(np.concatenate(chunks, axis=0))


TEXT_ENCODERS = {"flax": FlaxClipTextEncoder, "torch": ClipTextEncoder}


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def build_text_classifier(
    names: Sequence[str] | str,
    clip_model: str | os.PathLike[str] = DEFAULT_CLIP_MODEL,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_cache: bool = True,
    encoder: str = "flax",
) -> np.ndarray:
    """The ``(C, D)`` float32 zero-shot classifier for ``names``, rows in the order of ``names``.

    Args:
        names: category names (cleaned with :func:`~ov2seg_jax.vocabulary.names.clean_name`), or
            a vocabulary spec string (comma-separated names or a ``.txt`` path) for
            :func:`~ov2seg_jax.vocabulary.names.load_vocabulary`.
        clip_model: local directory or hub id of a transformers CLIP checkpoint.
        templates: prompt templates, each with one ``{}``.
        cache_dir: classifier cache folder; None uses ``$OV2SEG_CACHE`` or
            ``~/.cache/ov2seg_jax/classifiers``.
        batch_size: prompts per forward pass.
        use_cache: read and write the cache; False always runs the encoder and writes nothing.
        encoder: ``"flax"`` (:class:`FlaxClipTextEncoder`, no torch) or ``"torch"``
            (:class:`ClipTextEncoder`, the cross-check).

    Raises:
        ValueError: for an empty vocabulary, empty or duplicate names, or bad templates.
        OSError: naming ``clip_model`` if the encoder cannot be loaded.
    """
    cleaned = load_vocabulary(names) if isinstance(names, str) else prepare_names(names)
    prompts_per_name = validate_templates(templates)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if encoder not in TEXT_ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(TEXT_ENCODERS)}, got {encoder!r}")

    key = None
    if use_cache:
        key = make_cache_key(encoder_identity(clip_model), cleaned, prompts_per_name)
        cached = load_cached(cache_dir, key, num_rows=len(cleaned))
        if cached is not None:
            return cached

    model = TEXT_ENCODERS[encoder](clip_model)
    prompts = [template.format(name) for name in cleaned for template in prompts_per_name]
    embeddings = model.encode(prompts, batch_size=batch_size)
    embeddings = embeddings.reshape(len(cleaned), len(prompts_per_name), -1)
    classifier = _l2_normalise(embeddings.mean(axis=1))

    if key is not None:
        save_cached(cache_dir, key, classifier)
    return classifier
