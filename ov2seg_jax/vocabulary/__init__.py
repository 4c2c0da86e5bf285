"""Open-vocabulary text classifiers: vocabularies, prompt templates and the CLIP text encoder
(a Flax port that reads Hugging Face CLIP checkpoints without torch; transformers' PyTorch CLIP as
a cross-check).

Typical use::

    from ov2seg_jax.vocabulary import build_text_classifier, load_vocabulary

    names = load_vocabulary("cat,dog,skateboard")  # or a path to a names .txt file
    classifier = build_text_classifier(names, clip_model="/models/clip-vit-base-patch32")
    # classifier: (3, 512) float32, unit-norm rows, the layout of fg_bg_5_10_*_ens.npy

From a user's spec (names, a names file, a ``.npy`` classifier or a shipped dataset name)::

    from ov2seg_jax.vocabulary import classifier_for

    names, classifier = classifier_for("cat,dog", config.vocabulary, 512)

Command line: ``python -m data_prep.build_classifier --names "cat,dog" --clip DIR --out c.npy``.
"""

from __future__ import annotations

from ov2seg_jax.vocabulary.cache import CACHE_ENV_VAR, cache_key, default_cache_dir
from ov2seg_jax.vocabulary.clip_text import (
    DEFAULT_CLIP_MODEL,
    ClipTextEncoder,
    FlaxClipTextEncoder,
    build_text_classifier,
    encoder_identity,
)
from ov2seg_jax.vocabulary.names import (
    clean_name,
    load_vocabulary,
    parse_names,
    prepare_names,
    read_names_file,
)
from ov2seg_jax.vocabulary.resolve import (
    ENCODERS,
    check_classifier,
    classifier_for,
    encode_vocabulary,
    resolve_templates,
)
from ov2seg_jax.vocabulary.shipped import SHIPPED_DATASETS, dataset_classifier_path, dataset_names
from ov2seg_jax.vocabulary.templates import DEFAULT_TEMPLATES, SINGLE_TEMPLATE, validate_templates

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_TEMPLATES",
    "ENCODERS",
    "SHIPPED_DATASETS",
    "SINGLE_TEMPLATE",
    "ClipTextEncoder",
    "FlaxClipTextEncoder",
    "build_text_classifier",
    "cache_key",
    "check_classifier",
    "classifier_for",
    "dataset_classifier_path",
    "dataset_names",
    "clean_name",
    "default_cache_dir",
    "encode_vocabulary",
    "encoder_identity",
    "load_vocabulary",
    "parse_names",
    "prepare_names",
    "read_names_file",
    "resolve_templates",
    "validate_templates",
]
