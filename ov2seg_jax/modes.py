"""One function per ``--mode`` of the entry point, each ``fn(config, workdir)``.

Adding a mode is adding a function here and an entry in :data:`MODES`. ``--mode all``
(:mod:`ov2seg_jax.end_to_end`) is built from these functions, so the entry point adds it to the
table, and imports run one way: ``main`` -> ``end_to_end`` -> ``modes``.
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
        emb = np.load(path, allow_pickle=False)
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
    except ImportError as e:  # a .pth file without the torch extra: the reader names it
        raise UserError(str(e)) from e
    print(converted.report.format())
    out = checkpoint.save_model(
        model_dir(config, workdir), converted.variables, model_cfg, converted.classifier
    )
    print(f"wrote {out}")
    return out


def load_predictor(
    config: ml_collections.ConfigDict, workdir: str, classifier: np.ndarray | None = None
):
    """The model directory's variables and architecture as a VideoPredictor, with ``classifier``
    (C, D) or else ``config.classifier.path`` or else the classifier saved with the model."""
    from ov2seg_jax.inference.predictor import VideoPredictor

    if config.inference.export:
        return _exported_predictor(config, classifier)
    from ov2seg_jax.inference.program_cache import cache_folder

    model_cfg, variables = _load_model_dir(config, workdir, program_shapes=True)
    programs = cache_folder(model_cfg, config.inference.matmul_precision)
    if classifier is None and config.classifier.path:
        classifier = load_classifier(config.classifier.path, model_cfg.decoder.text_embed_dim)
    elif classifier is None:
        classifier = _saved_classifier(config, workdir)
        if classifier is None:
            raise UserError("no text classifier: set --config.classifier.path=FILE.npy")
    return VideoPredictor.from_config(
        model_cfg, variables, classifier, config.inference, programs=programs
    )


def load_export(config: ml_collections.ConfigDict):
    """The ExportedModel of ``config.inference.export``, or a UserError naming the folder."""
    from ov2seg_jax.export.loaded import ExportedModel

    try:
        return ExportedModel.load(config.inference.export)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e


def _exported_predictor(config: ml_collections.ConfigDict, classifier: np.ndarray | None):
    """A VideoPredictor running the export of ``config.inference.export``."""
    from ov2seg_jax.inference.predictor import VideoPredictor

    exported = load_export(config)
    dim = exported.text_embed_dim
    if classifier is None and config.classifier.path:
        classifier = load_classifier(config.classifier.path, dim)
    elif classifier is None:
        classifier = exported.classifier
        if classifier is None:
            raise UserError("no text classifier: set --config.classifier.path=FILE.npy")
    return VideoPredictor.from_export(exported, classifier, config.inference)


def _text_embed_dim(config: ml_collections.ConfigDict, workdir: str) -> int:
    """The model's text width D, from the export (inference.export) or the model directory."""
    if config.inference.export:
        return load_export(config).text_embed_dim
    try:
        model_cfg = checkpoint.load_model_config(model_dir(config, workdir))
    except checkpoint.CheckpointDamagedError as e:
        raise UserError(str(e)) from e
    except FileNotFoundError as e:
        raise UserError(f"{e}\n(run --mode convert first, or set --config.checkpoint.path)") from e
    return int(model_cfg.decoder.text_embed_dim)


def _saved_classifier(config: ml_collections.ConfigDict, workdir: str) -> np.ndarray | None:
    """The classifier saved with the export or in the model directory (None: none was saved)."""
    if config.inference.export:
        return load_export(config).classifier
    try:
        return checkpoint.load_classifier(model_dir(config, workdir))
    except checkpoint.CheckpointDamagedError as e:
        raise UserError(str(e)) from e


def _load_model_dir(
    config: ml_collections.ConfigDict, workdir: str, *, program_shapes: bool = False
):
    """(model config, variables) of the model directory, or a UserError saying what to run.
    ``program_shapes``: take the variables' shapes from a cached window program of this model when
    there is one (:mod:`~ov2seg_jax.inference.program_cache`) instead of ``eval_shape``."""
    from ov2seg_jax.inference.program_cache import cache_folder, cached_variable_shapes

    mdir = model_dir(config, workdir)
    try:
        model_cfg = checkpoint.load_model_config(mdir)
        abstract = None
        if program_shapes:
            programs = cache_folder(model_cfg, config.inference.matmul_precision)
            abstract = None if programs is None else cached_variable_shapes(programs)
        if abstract is None:
            abstract = abstract_variables(model_cfg)
        variables = checkpoint.load_model(mdir, abstract)
    except checkpoint.CheckpointDamagedError as e:
        raise UserError(str(e)) from e
    except (FileNotFoundError, checkpoint.CheckpointMismatchError) as e:
        raise UserError(f"{e}\n(run --mode convert first, or set --config.checkpoint.path)") from e
    return model_cfg, variables


def _predict_vocabulary(
    config: ml_collections.ConfigDict, workdir: str, text_embed_dim: int
) -> tuple[list[str], np.ndarray | None]:
    """Class names and classifier for --mode predict: ``predict.vocabulary`` if set, else
    ``classifier.path``, else the model directory's classifier (None: load_predictor finds it)."""
    from ov2seg_jax.vocabulary import classifier_for

    spec = config.predict.vocabulary
    if not spec and config.classifier.path:
        spec = resolve_data_path(config.classifier.path)
    if not spec:
        saved = _saved_classifier(config, workdir)
        if saved is None:
            raise UserError(
                'no vocabulary: set --config.predict.vocabulary (e.g. "cat,dog", names.txt, '
                "classifier.npy or lvvis)"
            )
        return [f"class {i + 1}" for i in range(saved.shape[0])], None
    try:
        return classifier_for(spec, config.vocabulary, text_embed_dim)
    except (KeyError, OSError, ValueError) as e:
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if spec not in message:
            message = f"vocabulary {spec!r}: {message}"
        raise UserError(message) from e


def run_predict(config: ml_collections.ConfigDict, workdir: str):
    """Predict one video (a video file or a folder of frames) with any vocabulary; writes the
    results JSON, categories, a table of tracks and an overlay video to ``predict.output``.
    Returns the :class:`~ov2seg_jax.inference.predict_video.PredictOutputs`."""
    from ov2seg_jax.inference.predict_video import predict_to_folder
    from ov2seg_jax.inference.streaming import check_network_size
    from ov2seg_jax.inference.video_source import network_size, open_video

    pc = config.predict
    if not pc.input:
        raise UserError(
            "--mode predict needs --config.predict.input=VIDEO_FILE_OR_FOLDER_OF_FRAMES"
        )
    if pc.overlay not in ("mp4", "gif", "none"):
        raise UserError(f"predict.overlay must be 'mp4', 'gif' or 'none', got {pc.overlay!r}")
    inf = config.inference
    try:
        source = open_video(pc.input)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    try:  # before anything is loaded: frames too small for the network
        size = network_size(source, inf.min_size_test, inf.max_size_test)
        check_network_size(size, inf.size_divisibility)
    except ValueError as e:
        raise UserError(f"{pc.input}: {e}") from e
    names, classifier = _predict_vocabulary(config, workdir, _text_embed_dim(config, workdir))
    predictor = load_predictor(config, workdir, classifier)
    if config.inference.export:  # before any frame is decoded: is the bucket exported?
        from ov2seg_jax.export.buckets import Bucket

        hp, wp = check_network_size(size, predictor.size_divisibility)
        bucket = Bucket(predictor.window_size, hp, wp, int(predictor.classifier.shape[0]))
        try:
            load_export(config).check_bucket(bucket)
        except ValueError as e:
            raise UserError(str(e)) from e
    if jax.process_index() != 0:  # one video: process 0 predicts and writes, the others rest
        return None
    out_dir = pc.output or os.path.join(workdir, "predict")
    try:
        out = predict_to_folder(
            predictor,
            source,
            names,
            out_dir,
            min_size=inf.min_size_test,
            max_size=inf.max_size_test,
            overlay=pc.overlay,
            score_threshold=pc.score_threshold,
            fps=pc.fps,
            cache_bytes=int(pc.cache_mb) << 20,
        )
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    print(out.table)
    if out.window_ages_s:
        line = f"first window predicted {out.window_ages_s[0]:.2f} s after the process started"
        if out.window_s() is not None:
            line += f" (start-up {out.startup_s():.2f} s, then {out.window_s():.2f} s a window)"
        print(line)
    for path in (out.results, out.categories, out.tracks, out.overlay):
        if path:
            print(f"wrote {path}")
    return out


def run_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """Predict every video of a split, write results.json, and score it when the split has GT.

    In a process group the videos are split over the hosts; process 0 writes and scores."""
    from ov2seg_jax.data.eval_split import open_eval_split
    from ov2seg_jax.evaluation.errors import EvalInputError
    from ov2seg_jax.evaluation.video_ap import evaluate_video
    from ov2seg_jax.inference.evaluation_loop import predict_dataset

    ev = config.evaluate
    try:
        split = open_eval_split(ev)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    dataset = split.dataset
    predictor = load_predictor(config, workdir)
    if predictor.classifier.shape[0] != len(dataset.category_ids):
        raise UserError(
            f"the classifier has {predictor.classifier.shape[0]} rows but {split.label} has "
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
    if jax.process_index() != 0:  # every host predicted its share; process 0 scores and writes
        return None
    print(f"wrote {results_path}")
    if not dataset.has_annotations:
        from ov2seg_jax.evaluation.submission import write_submission

        zip_path = write_submission(
            results_path, os.path.join(out_dir, "submission.zip"), videos=split.ground_truth
        )
        print(f"{split.label} has no annotations: wrote the server submission {zip_path}")
        return None
    try:
        result = evaluate_video(split.ground_truth, results_path, semantics=ev.semantics)
    except EvalInputError as e:
        raise UserError(str(e)) from e
    stats = result.to_json()
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(result.format_table(title=os.path.basename(split.label)))
    return stats


def run_train(config: ml_collections.ConfigDict, workdir: str):
    """Train ``config.model`` on ``config.data``; resumes from WORKDIR/train/checkpoints."""
    from ov2seg_jax.data.pipeline import dataset_info
    from ov2seg_jax.train.loop import NonFiniteLossError
    from ov2seg_jax.train.run import make_eval_fn, run_training

    if not config.classifier.path:
        raise UserError("--mode train needs --config.classifier.path=FILE.npy (C, D)")
    classifier = load_classifier(config.classifier.path, config.model.decoder.text_embed_dim)
    try:
        info = dataset_info(config.data)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise UserError(f"training data ({config.data.dataset} in {config.data.root}): {e}") from e
    if info.num_classes != classifier.shape[0]:
        raise UserError(
            f"classifier {config.classifier.path} has {classifier.shape[0]} rows but the training "
            f"data {config.data.dataset} has {info.num_classes} categories"
        )
    try:
        eval_fn = make_eval_fn(config, workdir, classifier)
        return run_training(config, workdir, classifier, resolve=resolve_data_path, eval_fn=eval_fn)
    except (NonFiniteLossError, FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e


def run_export(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """The model directory's network -> jax.export artifacts per bucket, a TF SavedModel and
    manifest.json in ``export.output`` (see :mod:`ov2seg_jax.export.writer`)."""
    from ov2seg_jax.export.buckets import parse_buckets
    from ov2seg_jax.export.writer import write_export

    ex = config.export
    try:
        buckets = parse_buckets(ex.buckets)
    except ValueError as e:
        raise UserError(f"export.buckets: {e}") from e
    model_cfg, variables = _load_model_dir(config, workdir)
    out_dir = ex.output or os.path.join(workdir, "export")
    try:
        manifest = write_export(
            out_dir,
            model_cfg,
            variables,
            buckets,
            config.inference,
            platforms=ex.platforms.split(","),
            classifier=checkpoint.load_classifier(model_dir(config, workdir)),
            saved_model=ex.saved_model,
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    print(
        f"wrote {out_dir}: buckets {', '.join(b['name'] for b in manifest['buckets'])} for "
        f"{', '.join(manifest['platforms'])}"
        + (" and a TF SavedModel" if manifest["saved_model"] else "")
    )
    return manifest


def expand_workdir(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``{workdir}`` in every string replaced by ``workdir``."""
    config = config.copy_and_resolve_references()

    def visit(node: ml_collections.ConfigDict) -> None:
        for key, value in node.items():
            if isinstance(value, ml_collections.ConfigDict):
                visit(value)
            elif isinstance(value, str) and "{workdir}" in value:
                node[key] = value.replace("{workdir}", workdir)

    visit(config)
    return config


MODES: dict[str, Callable[[ml_collections.ConfigDict, str], object]] = {
    "convert": run_convert,
    "export": run_export,
    "predict": run_predict,
    "evaluate": run_evaluate,
    "train": run_train,
}
