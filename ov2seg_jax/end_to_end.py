"""``--mode all``: the whole system on one config, resumable stage by stage.

1. data: the synthetic dataset is built into ``config.synthetic.root`` when the config has a
   ``synthetic`` block and the dataset is not there yet, then prepared with the TFDS builder
   ``ov2seg_synthetic`` into ``config.synthetic.tfds_data_dir``, which training and evaluation
   read (``tfds:ov2seg_synthetic:train`` / ``:val``); other configs use their data as it is;
2. train (``--mode train``; resumes from the newest checkpoint, nothing to do when finished);
3. evaluate the held-out split (``--mode evaluate``; AP, base AP, novel AP);
4. predict one held-out video (``predict.input``, default the split's first video) with the
   configured vocabulary (``--mode predict``): results JSON, overlay, table of tracks;
5. plot the training loss and the periodic AP (``WORKDIR/training.png``);
6. write ``WORKDIR/summary.json`` and print where everything is.

Each stage keeps its own resumable state, so running the command again after an interruption
continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections

from ov2seg_jax import modes
from ov2seg_jax.train import distributed


def ensure_synthetic_data(config: ml_collections.ConfigDict) -> str | None:
    """Build the synthetic dataset of ``config.synthetic`` if absent; its root (None: no block)."""
    if "synthetic" not in config:
        return None
    from ov2seg_jax.data.synthetic import SyntheticSpec, build_synthetic_dataset

    sc = config.synthetic
    spec = SyntheticSpec(
        num_train_videos=int(sc.num_train_videos), num_val_videos=int(sc.num_val_videos)
    )
    t = time.perf_counter()
    try:
        if jax.process_index() == 0:  # one builder; the other hosts read it when it is whole
            build_synthetic_dataset(sc.root, spec, seed=int(sc.seed))
        distributed.barrier("synthetic dataset built")
        paths = build_synthetic_dataset(sc.root, spec, seed=int(sc.seed))  # complete: a no-op
    except (OSError, ValueError) as e:
        raise modes.UserError(f"synthetic dataset at {sc.root}: {e}") from e
    print(f"synthetic dataset: {paths['root']} ({time.perf_counter() - t:.1f} s)")
    ensure_synthetic_tfds(paths["root"], sc.tfds_data_dir)
    return paths["root"]


def ensure_synthetic_tfds(folder: str, data_dir: str) -> None:
    """Prepare the TFDS set ``ov2seg_synthetic`` from the synthetic build at ``folder``."""
    from ov2seg_jax.data.tfds.prepare import prepare

    t = time.perf_counter()
    try:
        builder = prepare("ov2seg_synthetic", folder, data_dir)
    except (OSError, ValueError) as e:
        raise modes.UserError(f"TFDS synthetic set in {data_dir}: {e}") from e
    print(f"TFDS ov2seg_synthetic: {builder.data_dir} ({time.perf_counter() - t:.1f} s)")


def first_video_folder(dataset_json: str, image_root: str) -> str:
    """The frame folder of the first video of a YouTube-VIS-format split."""
    from ov2seg_jax.data.video_json import load_video_dataset

    dataset = load_video_dataset(dataset_json, image_root)
    if not dataset.videos:
        raise modes.UserError(f"{dataset_json} has no videos to predict")
    return os.path.dirname(dataset.videos[0].frame_paths[0])


def run_end_to_end(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Run every stage (see the module docstring); returns the summary written to summary.json."""
    from ov2seg_jax.train.plot import plot_training

    start = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str, fn):
        print(f"\n== {name}")
        t = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t, 1)
        return out

    stage("data", lambda: ensure_synthetic_data(config))
    trained = stage("train", lambda: modes.run_train(config, workdir))
    stats = stage("evaluate", lambda: modes.run_evaluate(config, workdir))
    if not config.predict.input:
        config.predict.input = first_video_folder(
            config.evaluate.dataset_json, config.evaluate.image_root
        )
    predicted = stage("predict", lambda: modes.run_predict(config, workdir))
    if jax.process_index() != 0:  # process 0 plots and writes the summary
        return {}
    plot_path = os.path.join(workdir, "training.png")
    stage("plot", lambda: plot_training(trained.metrics_path, plot_path))

    summary = {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "stage_seconds": timings,
        "final_step": trained.final_step,
        "model": trained.model_dir,
        "training_metrics": trained.metrics_path,
        "training_plot": plot_path,
        "evaluation": os.path.join(workdir, "evaluate", "stats.json"),
        "predict_input": config.predict.input,
        "predict_results": predicted.results,
        "overlay": predicted.overlay,
    }
    if stats is not None:
        summary["AP"] = stats["stats"][0]
        if stats["stats_base"][0] >= 0:
            summary["AP_base"] = stats["stats_base"][0]
            summary["AP_novel"] = stats["stats_novel"][0]
    path = os.path.join(workdir, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)

    print("\n== done in {:.0f} s".format(summary["wall_seconds"]))
    if stats is not None:
        ap = " ".join(
            f"{k} {summary[k]:.3f}" for k in ("AP", "AP_base", "AP_novel") if k in summary
        )
        print(f"video AP on the held-out videos: {ap}")
    for key in ("model", "evaluation", "predict_results", "overlay", "training_plot"):
        print(f"{key:>16}: {summary[key]}")
    print(f"{'summary':>16}: {path}")
    return summary
