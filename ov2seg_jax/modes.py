"""One function per ``--mode`` of the entry point, each ``fn(config, workdir)``.

Adding a mode is adding a function here and an entry in :data:`MODES`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from ov2seg_jax import checkpoint
from ov2seg_jax.convert.convert_ov2seg import abstract_variables, convert_checkpoint
from ov2seg_jax.convert.converter import ConversionError
from ov2seg_jax.convert.readers import CheckpointFormatError
from ov2seg_jax.parity.paths import metadata_dir


class UserError(Exception):
    """A problem with the user's input; reported as one line, without a traceback."""


def model_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
    return config.checkpoint.path or os.path.join(workdir, "checkpoint")


def resolve_data_path(path: str) -> str:
    """``path`` as given if it exists, else its file name in the metadata folder."""
    if os.path.exists(path):
        return path
    candidate = os.path.join(metadata_dir(), os.path.basename(path))
    if os.path.exists(candidate):
        return candidate
    raise UserError(f"file not found: {path} (also looked for {candidate})")


def load_classifier(path: str, text_embed_dim: int) -> np.ndarray:
    """A (C, D) text classifier from a .npy file, checked against the model's text width."""
    path = resolve_data_path(path)
    try:
        emb = np.load(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read classifier {path}: {e}") from e
    if emb.ndim != 2 or emb.shape[1] != text_embed_dim:
        raise UserError(
            f"classifier {path} has shape {emb.shape}; the model expects "
            f"(num_classes, {text_embed_dim})"
        )
    return emb.astype(np.float32)


def run_convert(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Original checkpoint (``config.convert.source``) -> Orbax model directory."""
    source = config.convert.source
    if not source:
        raise UserError("--mode convert needs --config.convert.source=PATH (.pth or .pkl)")
    try:
        converted, model_cfg = convert_checkpoint(
            source,
            None if config.convert.infer_architecture else config.model,
            allow_partial=config.convert.allow_partial,
        )
    except (FileNotFoundError, CheckpointFormatError, ConversionError, ValueError) as e:
        raise UserError(str(e)) from e
    print(converted.report.format())
    out = checkpoint.save_model(
        model_dir(config, workdir), converted.variables, model_cfg, converted.classifier
    )
    print(f"wrote {out}")
    return out


def load_predictor(config: ml_collections.ConfigDict, workdir: str):
    """The model directory's variables and architecture, the classifier, as a VideoPredictor."""
    from ov2seg_jax.inference.predictor import VideoPredictor
    from ov2seg_jax.models.ov2seg import build_model

    jax.config.update("jax_default_matmul_precision", config.inference.matmul_precision)
    mdir = model_dir(config, workdir)
    try:
        model_cfg = checkpoint.load_model_config(mdir)
        variables = checkpoint.load_model(mdir, abstract_variables(model_cfg))
    except (FileNotFoundError, checkpoint.CheckpointMismatchError) as e:
        raise UserError(f"{e}\n(run --mode convert first, or set --config.checkpoint.path)") from e
    if config.classifier.path:
        classifier = load_classifier(config.classifier.path, model_cfg.decoder.text_embed_dim)
    else:
        classifier = checkpoint.load_classifier(mdir)
        if classifier is None:
            raise UserError("no text classifier: set --config.classifier.path=FILE.npy")
    inf = config.inference
    return VideoPredictor(
        build_model(model_cfg),
        variables,
        classifier,
        window_size=inf.window_size,
        top_k=inf.top_k,
        size_divisibility=inf.size_divisibility,
    )


def run_predict(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Predict one video (a folder of frames) and write results JSON + a table of tracks."""
    from ov2seg_jax.inference.frames import read_frame_folder
    from ov2seg_jax.inference.results import format_tracks, to_results, write_results

    if not config.predict.input:
        raise UserError("--mode predict needs --config.predict.input=FOLDER_OF_FRAMES")
    predictor = load_predictor(config, workdir)
    try:
        frames, (height, width), _ = read_frame_folder(
            config.predict.input, config.inference.min_size_test, config.inference.max_size_test
        )
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    pred = predictor.predict(frames, output_size=(height, width))
    out_dir = config.predict.output or os.path.join(workdir, "predict")
    path = write_results(os.path.join(out_dir, "results.json"), to_results(0, pred))
    print(format_tracks(pred))
    print(f"wrote {path}")
    return path


def run_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """Predict every video of a split, write results.json, and score it when the split has GT."""
    from ov2seg_jax.data.video_json import load_video_dataset
    from ov2seg_jax.evaluation.errors import EvalInputError
    from ov2seg_jax.evaluation.video_ap import evaluate_video
    from ov2seg_jax.inference.evaluation_loop import predict_dataset

    ev = config.evaluate
    try:
        dataset = load_video_dataset(ev.dataset_json, ev.image_root)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    predictor = load_predictor(config, workdir)
    if predictor.classifier.shape[0] != len(dataset.category_ids):
        raise UserError(
            f"the classifier has {predictor.classifier.shape[0]} rows but {ev.dataset_json} has "
            f"{len(dataset.category_ids)} categories; set --config.classifier.path to the "
            "dataset's classifier"
        )
    out_dir = os.path.join(workdir, "evaluate")
    try:
        results_path = predict_dataset(
            predictor, dataset, out_dir, config.inference, max_videos=ev.max_videos
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    print(f"wrote {results_path}")
    if not dataset.has_annotations:
        from ov2seg_jax.evaluation.submission import write_submission

        zip_path = write_submission(
            results_path, os.path.join(out_dir, "submission.zip"), videos=ev.dataset_json
        )
        print(f"{ev.dataset_json} has no annotations: wrote the server submission {zip_path}")
        return None
    try:
        result = evaluate_video(ev.dataset_json, results_path, semantics=ev.semantics)
    except EvalInputError as e:
        raise UserError(str(e)) from e
    stats = result.to_json()
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(result.format_table(title=os.path.basename(ev.dataset_json)))
    return stats


MODES: dict[str, Callable[[ml_collections.ConfigDict, str], object]] = {
    "convert": run_convert,
    "predict": run_predict,
    "evaluate": run_evaluate,
}
