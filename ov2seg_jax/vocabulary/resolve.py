"""One entry point from a user's vocabulary to ``(names, classifier)``: :func:`classifier_for`.

A vocabulary spec is one of

* a shipped dataset name (``lvvis``, ``ytvis19``, ``ytvis21``, ``ovis``, ``coco``, ``lvis``): the
  original's precomputed classifier from the metadata folder and that dataset's category names;
* a ``.npy`` classifier ``(C, D)``: its names come from a text file beside it with the same stem
  (``my_classes.npy`` + ``my_classes.txt``, one name a line), else from the shipped dataset the
  file is named after, else they are ``class 1`` .. ``class C``;
* a ``.txt`` file with one name a line, or comma-separated names (``"cat,dog,skateboard"``): the
  names are embedded with the text encoder of the ``vocabulary`` config block:

  ``encoder``: ``"clip"`` (the Flax CLIP text tower on a Hugging Face CLIP checkpoint, no torch;
  prompt ensemble, cached on disk; see
  :func:`~ov2seg_jax.vocabulary.clip_text.build_text_classifier`), ``"clip_torch"`` (the same
  through transformers' PyTorch CLIP, a cross-check that needs torch) or ``"compositional"`` (the
  deterministic word-vector encoder of :mod:`ov2seg_jax.vocabulary.compositional`, for the
  built-in synthetic data; no weights needed).
  ``clip_model``: local directory or hub id of the CLIP checkpoint.
  ``templates``: ``"ensemble"`` (the built-in prompt ensemble), ``"single"`` (``"a photo of a
  {}."``) or a ``.txt`` file with one template a line.
  ``cache_dir``: classifier cache folder (empty: ``$OV2SEG_CACHE`` or the default).

Every classifier is checked to be ``(C, text_embed_dim)`` with finite values. Names are returned
cleaned (``aerosol_can`` -> ``aerosol can``), in row order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ov2seg_jax.config_fields import require
from ov2seg_jax.vocabulary.clip_text import build_text_classifier
from ov2seg_jax.vocabulary.names import clean_name, load_vocabulary, read_names_file
from ov2seg_jax.vocabulary.shipped import (
    SHIPPED_DATASETS,
    dataset_classifier_path,
    dataset_names,
    dataset_of_classifier,
)
from ov2seg_jax.vocabulary.templates import (
    DEFAULT_TEMPLATES,
    SINGLE_TEMPLATE,
    validate_templates,
)

ENCODERS = ("clip", "clip_torch", "compositional")


def _field(cfg: Mapping | None, name: str):
    """``config.vocabulary.<name>``; its value lives in configs/, so a missing one is an error."""
    if cfg is None:
        raise ValueError(
            "encoding names needs the vocabulary config (encoder, clip_model, templates, "
            "cache_dir: config.vocabulary)"
        )
    require(cfg, "config.vocabulary", [name])
    return cfg[name]


def resolve_templates(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"ensemble"``, ``"single"``, a ``.txt`` file (one template a line) or a sequence."""
    if isinstance(spec, str):
        if spec in ("", "ensemble"):
            return DEFAULT_TEMPLATES
        if spec == "single":
            return SINGLE_TEMPLATE
        if not os.path.isfile(os.path.expanduser(spec)):
            raise ValueError(
                f"vocabulary.templates={spec!r}: expected 'ensemble', 'single' or a text file "
                "with one prompt template a line"
            )
        return validate_templates(read_names_file(os.path.expanduser(spec)))
    return validate_templates(spec)


def encode_vocabulary(
    names: Sequence[str], vocab_cfg: Mapping | None, text_embed_dim: int
) -> np.ndarray:
    """Embed cleaned ``names`` with the encoder of ``vocab_cfg``: ``(C, D)`` float32, unit rows."""
    encoder = _field(vocab_cfg, "encoder")
    if encoder == "compositional":
        try:
            from ov2seg_jax.vocabulary.compositional import encode_names
        except ImportError as e:  # pragma: no cover - the module ships with the package
            raise ValueError(f"the compositional text encoder is not available: {e}") from e
        return np.asarray(encode_names(list(names), dim=text_embed_dim), np.float32)
    if encoder in ("clip", "clip_torch"):
        cache_dir = _field(vocab_cfg, "cache_dir") or None
        try:
            return build_text_classifier(
                list(names),
                clip_model=_field(vocab_cfg, "clip_model"),
                templates=resolve_templates(_field(vocab_cfg, "templates")),
                cache_dir=cache_dir,
                encoder="torch" if encoder == "clip_torch" else "flax",
            )
        except ImportError as e:  # clip_torch without torch
            raise ValueError(f"vocabulary.encoder={encoder!r}: {e}") from e
    raise ValueError(f"vocabulary.encoder must be one of {ENCODERS}, got {encoder!r}")


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"cannot read classifier {path}: {e}") from e


def _names_for_npy(path: str, num_rows: int) -> list[str]:
    sidecar = os.path.splitext(path)[0] + ".txt"
    if os.path.isfile(sidecar):
        names = load_vocabulary(sidecar)
        if len(names) != num_rows:
            raise ValueError(
                f"{sidecar} names {len(names)} categories but the classifier {path} has "
                f"{num_rows} rows"
            )
        return names
    dataset = dataset_of_classifier(path)
    if dataset is not None:
        names = [clean_name(n) for n in dataset_names(dataset)]
        if len(names) == num_rows:
            return names
    return [f"class {i + 1}" for i in range(num_rows)]


def check_classifier(classifier: np.ndarray, text_embed_dim: int, source: str) -> np.ndarray:
    """``classifier`` as float32 after checking it is ``(C >= 1, text_embed_dim)`` and finite."""
    arr = np.asarray(classifier)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != text_embed_dim:
        raise ValueError(
            f"classifier {source} has shape {arr.shape}; the model expects "
            f"(num_classes >= 1, {text_embed_dim})"
        )
    if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)):
        raise ValueError(f"classifier {source} must hold finite floating-point values")
    return arr.astype(np.float32)


def classifier_for(
    spec: str, vocab_cfg: Mapping | None, text_embed_dim: int
) -> tuple[list[str], np.ndarray]:
    """``(names, classifier)`` for a vocabulary spec (see the module docstring).

    Args:
        spec: a dataset name, a ``.npy`` classifier, a ``.txt`` names file or ``"cat,dog"``.
        vocab_cfg: the ``vocabulary`` config block (``encoder``, ``clip_model``, ``templates``,
            ``cache_dir``, all required to encode names); None where ``spec`` needs no
            encoder (a dataset or a ``.npy`` classifier).
        text_embed_dim: the model's text width D; every classifier must be ``(C, D)``.

    Returns:
        ``names`` (C cleaned names) and ``classifier`` (C, D) float32, row ``i`` for ``names[i]``.

    Raises:
        ValueError: empty vocabulary, duplicate names, a classifier of the wrong width or a file
            that cannot be read; FileNotFoundError: a missing file; OSError: an encoder that
            cannot be loaded.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("the vocabulary is empty; give names ('cat,dog'), a file or a dataset")
    spec = spec.strip()
    if spec.lower() in SHIPPED_DATASETS:
        path = dataset_classifier_path(spec)
        names = [clean_name(n) for n in dataset_names(spec)]
        classifier = check_classifier(_load_npy(path), text_embed_dim, path)
        if len(names) != classifier.shape[0]:
            raise ValueError(
                f"{spec}: {len(names)} category names but {path} has {classifier.shape[0]} rows"
            )
        return names, classifier
    if spec.endswith(".npy"):
        path = os.path.expanduser(spec)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"classifier file {spec} not found")
        classifier = check_classifier(_load_npy(path), text_embed_dim, path)
        return _names_for_npy(path, classifier.shape[0]), classifier
    names = load_vocabulary(spec)
    classifier = encode_vocabulary(names, vocab_cfg, text_embed_dim)
    return names, check_classifier(classifier, text_embed_dim, f"built for {spec!r}")
