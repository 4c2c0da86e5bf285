"""Model directories shared by the inference tests: the small fixture checkpoint converted once,
a random tiny-config model, and a tiny CLIP text model for vocabularies built from names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ov2seg_jax import checkpoint
from ov2seg_jax.convert.convert_ov2seg import convert_state_dict
from ov2seg_jax.convert.infer_config import infer_model_config
from ov2seg_jax.convert.readers import load_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def small_model_dir(fixtures_root, tmp_path_factory) -> str:
    state = load_state_dict(os.path.join(fixtures_root, "ov2seg_small", "model_small.pth"))
    cfg = infer_model_config(state)
    conv = convert_state_dict(state, cfg)
    return checkpoint.save_model(
        str(tmp_path_factory.mktemp("small_model")), conv.variables, cfg, conv.classifier
    )


def run_main(*args: str) -> subprocess.CompletedProcess:
    """``python -m ov2seg_jax.main ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "ov2seg_jax.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )


def write_tiny_model(directory: str, seed: int = 0) -> str:
    """A model directory for ``configs/tiny.py`` with random weights (no compile: numpy fill).

    Batch-norm statistics are 0 / 1 and scales 1, every other leaf ~ N(0, 0.1^2), which keeps the
    outputs finite and varied.
    """
    from configs import tiny
    from ov2seg_jax.convert.convert_ov2seg import random_variables

    cfg = tiny.get_config().model
    variables = random_variables(cfg, seed)
    return checkpoint.save_model(directory, variables, cfg)


def write_tiny_clip(root: str, projection_dim: int) -> str:
    """A random tiny CLIP text model with projection and a character-level tokenizer, saved with
    ``save_pretrained`` to ``root/model``; returns that directory. Needs torch and transformers."""
    import json
    import string

    import torch
    import transformers

    chars = string.ascii_lowercase + string.digits + ".,-()'!?"
    tokens = list(chars) + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    os.makedirs(root, exist_ok=True)
    vocab_file, merges_file = os.path.join(root, "vocab.json"), os.path.join(root, "merges.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(merges_file, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    model_dir = os.path.join(root, "model")
    tokenizer = transformers.CLIPTokenizer(vocab_file, merges_file)
    tokenizer.save_pretrained(model_dir)
    config = transformers.CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=projection_dim,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    transformers.CLIPTextModelWithProjection(config).save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A random ``configs/tiny.py`` model directory (text width 32, 8 queries)."""
    return write_tiny_model(str(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    """A tiny CLIP text model whose projection width (32) fits ``configs/tiny.py``."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return write_tiny_clip(str(tmp_path_factory.mktemp("tiny_clip")), projection_dim=32)
