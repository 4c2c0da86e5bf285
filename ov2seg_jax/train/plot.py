"""A PNG of a run: the training loss over steps and, when evaluated, AP (all/base/novel)."""

from __future__ import annotations

import os

from ov2seg_jax.train.metrics_writer import read_metrics


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    by_step = {r["step"]: r[key] for r in records if key in r}  # a resumed run's repeats: last wins
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot_training(metrics_path: str, out_path: str, *, title: str = "") -> str:
    """Draw ``metrics.jsonl`` into ``out_path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path} has no records to plot")
    eval_keys = [
        k for k in ("eval/AP", "eval/AP_base", "eval/AP_novel") if any(k in r for r in records)
    ]
    fig, axes = plt.subplots(1, 2 if eval_keys else 1, figsize=(11 if eval_keys else 6, 4))
    axes = axes if eval_keys else [axes]
    steps, loss = _series(records, "loss")
    axes[0].plot(steps, loss, lw=1.2, color="tab:blue")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (weighted sum, all layers)")
    axes[0].grid(alpha=0.3)
    if eval_keys:
        colours = {"eval/AP": "black", "eval/AP_base": "tab:green", "eval/AP_novel": "tab:red"}
        for key in eval_keys:
            colour = colours[key]
            s, v = _series(records, key)
            axes[1].plot(s, v, marker="o", color=colour, label=key.split("/", 1)[1])
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("video AP")
        axes[1].set_ylim(0, 1)
        axes[1].grid(alpha=0.3)
        axes[1].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
