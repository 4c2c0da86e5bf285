"""Check our model against a model fixture directory of the original (``ov2seg_small`` layout).

A model fixture directory holds ``manifest.json`` (the weight recipe) and optionally a checkpoint
file (``*.pth`` / ``*.pkl``), one or more clips (``clip.npz``, ``long_clip.npz``) and the
original's outputs at every stage. The weights go through the real converter (file -> state dict
-> conversion table -> Flax variables), the architecture is read off the state dict, and every
stored tensor becomes one row of the parity table.

Tolerances: :mod:`ov2seg_jax.parity.tolerances`.
"""

from __future__ import annotations

import glob
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from ov2seg_jax.convert.convert_ov2seg import convert_state_dict
from ov2seg_jax.convert.infer_config import DECODER_HEADS, infer_model_config
from ov2seg_jax.convert.readers import load_state_dict
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.models.preprocess import normalize_and_pad
from ov2seg_jax.parity.manifest import regenerate_state_dict
from ov2seg_jax.parity.report import Row, compare, compare_exact
from ov2seg_jax.parity.tolerances import FEATURES, LOGITS, MASK_LOGITS
from ov2seg_jax.parity.tracking_fixture import check_post_processing
from ov2seg_jax.tracking.tracker import WINDOW_KEYS

WINDOW_SIZE = 10  # the original's run_window_inference default


def _decoder_heads(manifest: dict) -> int:
    """NHEADS from the manifest's config overrides, else the original's default."""
    overrides = []
    for v in manifest.get("config", {}).values():
        if isinstance(v, list):
            overrides += v
    for i, item in enumerate(overrides[:-1]):
        if item == "MODEL.MASK_FORMER.NHEADS":
            return int(overrides[i + 1])
    return DECODER_HEADS


def load_fixture_state(fixture_dir: str) -> tuple[dict, str]:
    """The fixture's state dict: from its checkpoint file when it ships one, else the manifest."""
    files = sorted(
        glob.glob(os.path.join(fixture_dir, "*.pth"))
        + glob.glob(os.path.join(fixture_dir, "*.pkl"))
    )
    if files:
        return load_state_dict(files[0]), os.path.basename(files[0])
    return regenerate_state_dict(fixture_dir), "manifest.json"


def _nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _res_name(key: str) -> str | None:
    m = re.fullmatch(r"(?:res|layer)(\d)", key)
    return f"res{m.group(1)}" if m else None


class FixtureModel:
    """The converted model of one fixture directory, with a jitted per-window forward."""

    def __init__(self, fixture_dir: str):
        state, self.weights_source = load_fixture_state(fixture_dir)
        with open(os.path.join(fixture_dir, "manifest.json")) as f:
            manifest = json.load(f)
        self.config = infer_model_config(state, decoder_heads=_decoder_heads(manifest))
        self.converted = convert_state_dict(state, self.config, source=self.weights_source)
        if self.converted.classifier is None:
            raise ValueError(f"{fixture_dir}: the checkpoint has no text classifier (zs_weight)")
        self.model = build_model(self.config)
        self.classifier = jnp.asarray(self.converted.classifier)
        self._forward = jax.jit(self._apply)

    def _apply(self, images, classifier):
        capture = lambda mdl, method: (
            mdl.name in ("backbone", "pixel_decoder") and method == "__call__"
        )
        out, state = self.model.apply(
            self.converted.variables, images, classifier, capture_intermediates=capture
        )
        inter = state["intermediates"]
        return out, inter["backbone"]["__call__"][0], inter["pixel_decoder"]["__call__"][0]

    def run_clip(self, frames: np.ndarray, window_size: int = WINDOW_SIZE):
        """Window outputs of the whole clip, plus frame 0's intermediates."""
        images = normalize_and_pad(frames)
        outs, first = [], None
        for start in range(0, images.shape[0], window_size):
            result = self._forward(images[start : start + window_size], self.classifier)
            outs.append(result[0])
            if first is None:
                first = result
        window = {k: np.concatenate([np.asarray(getattr(o, k)) for o in outs]) for k in WINDOW_KEYS}
        return window, first, np.asarray(images[:1])


def _stage_rows(fixture_dir: str, first, images0) -> list[Row]:
    out, backbone, (mask_features, multi_scale) = first
    rows = []
    path = os.path.join(fixture_dir, "backbone_frame0.npz")
    if os.path.exists(path):
        ref = np.load(path)
        if "images" in ref:
            rows.append(compare("backbone/images", _nchw(images0), ref["images"], FEATURES))
        for key in ref:
            res = _res_name(key)
            if res:
                rows.append(
                    compare(f"backbone/{key}", _nchw(backbone[res][:1]), ref[key], FEATURES)
                )
    path = os.path.join(fixture_dir, "pixel_decoder_frame0.npz")
    if os.path.exists(path):
        ref = np.load(path)
        ours = {"mask_features": mask_features[:1]}
        ours.update({f"multi_scale_{i}": m[:1] for i, m in enumerate(multi_scale)})
        for key in ref:
            rows.append(compare(f"pixel_decoder/{key}", _nchw(ours[key]), ref[key], FEATURES))
    path = os.path.join(fixture_dir, "decoder_aux_frame0.npz")
    if os.path.exists(path):
        ref = np.load(path)
        for key in sorted(ref):
            m = re.fullmatch(r"aux(\d+)_(pred_logits|pred_object_logits|pred_masks)", key)
            if not m:
                continue
            j, name = int(m.group(1)), m.group(2)
            ours = np.asarray(getattr(out.aux_outputs[j], name)[:1])
            if name == "pred_logits" and ref[key].shape[-1] < ours.shape[-1]:
                # Stored: the first columns plus the background column.
                ours = np.concatenate([ours[..., : ref[key].shape[-1] - 1], ours[..., -1:]], -1)
            tol = MASK_LOGITS if name == "pred_masks" else LOGITS
            rows.append(compare(f"decoder/{key}", ours, ref[key], tol))
    return rows


def _swin_unit_rows(fixture_dir: str, fm: FixtureModel) -> list[Row]:
    """The first Swin stage applied to a stored odd-sized token grid (``swin_stage1_unit.npz``)."""
    from ov2seg_jax.models.backbones.swin import SwinBlock, SwinStage, shift_window_mask

    unit = np.load(os.path.join(fixture_dir, "swin_stage1_unit.npz"))
    bb = fm.config.backbone
    dim, heads, win = bb.embed_dim, bb.num_heads[0], bb.window_size
    stage = {"params": fm.converted.variables["params"]["backbone"]["layers_0"]}
    hw = (int(unit["H"]), int(unit["W"]))
    x = jnp.asarray(unit["x"])
    block0 = SwinBlock(dim, heads, win).apply({"params": stage["params"]["blocks_0"]}, x, hw)
    out, _, merged, merged_hw = SwinStage(dim, bb.depths[0], heads, win).apply(stage, x, hw)
    grid = tuple(-(-n // win) * win for n in hw)
    rows = [
        compare("swin_unit/block0", block0, unit["block0"], FEATURES),
        compare("swin_unit/block1", out, unit["block1"], FEATURES),
        compare("swin_unit/merged", merged, unit["merged"], FEATURES),
        compare_exact("swin_unit/merged_hw", np.asarray(merged_hw), unit["merged_hw"]),
    ]
    if "shift_attn_mask" in unit:
        rows.append(
            compare_exact(
                "swin_unit/shift_attn_mask",
                shift_window_mask(*grid, win, win // 2),
                unit["shift_attn_mask"],
            )
        )
    return rows


def _window_rows(fixture_dir: str, window: dict, prefix: str) -> list[Row]:
    path = os.path.join(fixture_dir, f"{prefix}window_outputs.npz")
    if not os.path.exists(path):
        return []
    ref = np.load(path)
    tols = {"pred_masks": MASK_LOGITS}
    return [
        compare(f"{prefix}window/{k}", window[k], ref[k], tols.get(k, LOGITS))
        for k in ref
        if k in window
    ]


def check_model_dir(fixture_dir: str) -> list[Row]:
    """Every parity row of a model fixture directory (conversion, stages, tracking, instances)."""
    fm = FixtureModel(fixture_dir)
    report = fm.converted.report
    rows = [
        Row(
            f"conversion ({fm.weights_source})",
            0.0,
            0.0,
            "all keys accounted",
            report.ok,
            f"{report.converted} tensors",
        )
    ]
    if os.path.exists(os.path.join(fixture_dir, "swin_stage1_unit.npz")):
        rows += _swin_unit_rows(fixture_dir, fm)
    clips = sorted(glob.glob(os.path.join(fixture_dir, "*clip.npz")))
    if not clips:
        raise FileNotFoundError(f"{fixture_dir}: no clip.npz to run")
    for clip_path in clips:
        prefix = os.path.basename(clip_path)[: -len("clip.npz")]
        frames = np.load(clip_path)["frames"]
        window, first, images0 = fm.run_clip(frames)
        if prefix == "":
            rows += _stage_rows(fixture_dir, first, images0)
        rows += _window_rows(fixture_dir, window, prefix)
        rows += check_post_processing(window, fixture_dir, prefix=prefix)
    return rows
