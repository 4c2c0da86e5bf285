"""Hugging Face CLIP checkpoints for the Flax text tower, read without PyTorch.

A checkpoint is a directory with ``config.json`` (a full ``CLIPConfig`` or a ``CLIPTextConfig``),
``model.safetensors`` (or shards listed in ``model.safetensors.index.json``) and the tokenizer
files, as ``save_pretrained`` writes them; a hub id is resolved to the snapshot directory in the
hub cache (downloaded first where the hub is reachable). Weights map to the Flax tree through a
table of (Flax path, checkpoint key, transform), as the model converter does: every Flax leaf
must be found with the right shape; vision weights and ``logit_scale`` are not used.
PyTorch ``Linear`` weights are (out, in) and become (in, out) Flax kernels.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ov2seg_jax.vocabulary.flax_clip import ClipTextDims

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
HUB_FILES = [
    "config.json",
    "*.safetensors",
    SAFETENSORS_INDEX,
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]


def snapshot_dir(source: str) -> str:
    """The local directory of the hub id ``source`` (hub cache; downloaded if reachable)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id=source, allow_patterns=HUB_FILES)


def read_dims(directory: str) -> ClipTextDims:
    """The text tower's sizes from ``config.json`` (parsed by transformers, which needs no
    torch for configs); a full CLIP config's projection width is the outer one."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(directory)
    projection = getattr(config, "projection_dim", None)
    if isinstance(config, transformers.CLIPConfig):
        config = config.text_config
    elif not isinstance(config, transformers.CLIPTextConfig):
        raise ValueError(f"config.json describes a {type(config).__name__}, not a CLIP model")
    return ClipTextDims(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        projection_dim=int(projection if projection is not None else config.projection_dim),
        hidden_act=config.hidden_act,
        layer_norm_eps=float(config.layer_norm_eps),
        eos_token_id=int(config.eos_token_id),
    )


def _linear(flax_prefix: tuple[str, ...], key: str, bias: bool = True):
    rules = [((*flax_prefix, "kernel"), f"{key}.weight", "T")]
    if bias:
        rules.append(((*flax_prefix, "bias"), f"{key}.bias", ""))
    return rules


def _layer_norm(flax_prefix: tuple[str, ...], key: str):
    return [
        ((*flax_prefix, "scale"), f"{key}.weight", ""),
        ((*flax_prefix, "bias"), f"{key}.bias", ""),
    ]


def weight_rules(dims: ClipTextDims) -> list[tuple[tuple[str, ...], str, str]]:
    """(Flax param path, checkpoint key, transform) for every leaf of the text tower."""
    t = "text_model"
    rules = [
        (("token_embedding",), f"{t}.embeddings.token_embedding.weight", ""),
        (("position_embedding",), f"{t}.embeddings.position_embedding.weight", ""),
    ]
    for i in range(dims.num_hidden_layers):
        src, dst = f"{t}.encoder.layers.{i}", (f"layers_{i}",)
        rules += _layer_norm((*dst, "layer_norm1"), f"{src}.layer_norm1")
        rules += _layer_norm((*dst, "layer_norm2"), f"{src}.layer_norm2")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            rules += _linear((*dst, "self_attn", proj), f"{src}.self_attn.{proj}")
        for fc in ("fc1", "fc2"):
            rules += _linear((*dst, "mlp", fc), f"{src}.mlp.{fc}")
    rules += _layer_norm(("final_layer_norm",), f"{t}.final_layer_norm")
    rules += _linear(("text_projection",), "text_projection", bias=False)
    return rules


def _weight_files(directory: str) -> list[str]:
    index = os.path.join(directory, SAFETENSORS_INDEX)
    if os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(directory, s) for s in shards]
    single = os.path.join(directory, SAFETENSORS)
    if os.path.isfile(single):
        return [single]
    others = sorted(n for n in os.listdir(directory) if n.endswith((".bin", ".pth", ".pt")))
    hint = (
        f" (it has {others}: PyTorch files need vocabulary.encoder='clip_torch')" if others else ""
    )
    raise FileNotFoundError(f"no {SAFETENSORS} in {directory}{hint}")


def load_params(directory: str, dims: ClipTextDims) -> dict:
    """The Flax params of the text tower from the directory's safetensors, float32."""
    from safetensors import safe_open

    rules = weight_rules(dims)
    wanted = {key for _, key, _ in rules}
    found: dict[str, np.ndarray] = {}
    for path in _weight_files(directory):
        with safe_open(path, framework="numpy") as f:
            for stored in f.keys():
                # A bare CLIPTextModel stores its keys without the "text_model." prefix.
                key = stored if stored in wanted else f"text_model.{stored}"
                if key in wanted:
                    found[key] = f.get_tensor(stored)
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(
            f"the checkpoint is not a CLIP text model with projection: {len(missing)} weights "
            f"missing, e.g. {missing[:3]}"
        )
    params: dict = {}
    expected = _expected_shapes(dims)
    for flax_path, key, transform in rules:
        value = found[key].astype(np.float32)
        if transform == "T":
            value = value.T
        if value.shape != expected[flax_path]:
            raise ValueError(
                f"{key} has shape {found[key].shape}; the config implies {expected[flax_path]}"
                + (" (transposed)" if transform else "")
            )
        node = params
        for part in flax_path[:-1]:
            node = node.setdefault(part, {})
        node[flax_path[-1]] = value
    return params


def _expected_shapes(dims: ClipTextDims) -> dict[tuple[str, ...], tuple[int, ...]]:
    import jax
    import jax.numpy as jnp

    from ov2seg_jax.vocabulary.flax_clip import ClipTextTower

    ids = jnp.zeros((1, 2), jnp.int32)
    shapes = jax.eval_shape(
        lambda: ClipTextTower(dims).init(jax.random.PRNGKey(0), ids, jnp.ones_like(ids))
    )["params"]
    return {
        tuple(k.key for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]
    }
