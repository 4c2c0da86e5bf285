"""Replay one training step of the original on a train_step fixture folder and print a parity table.

    python scripts/check_train_step.py ../shared/fixtures/train_step
    python scripts/check_train_step.py ../shared/fixtures/train_step --bf16

The folder needs the ``train_step/`` layout (``train_step.npz`` + ``train_step.json``, see the
fixture README); its weights are a ``.pth`` in it or the sibling ``ov2seg_small/`` folder
(``--weights`` names another). The step is built as ``--mode train`` builds it from
``configs/ov2seg_r50_lvis.py`` (optimizer rules, clipping, schedule, criterion), with the recorded
draws replayed. One row per quantity: weights, inputs, train-mode predictions, matches, loss terms,
total, global norm, clip coefficient, then per parameter its gradient and after-step value (full
tensors or the stored summaries), and every parameter's lr and weight decay. ``--bf16`` also
prints how far a bfloat16-compute step is from our float32 step. Exits 1 if any row fails and 2
(with a one-line reason) if the folder is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # the package need not be installed
    sys.path.insert(0, _REPO_ROOT)

from ov2seg_jax.parity.report import check_dirs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dirs", nargs="+", help="train_step fixture directories")
    parser.add_argument("--weights", default=None, help="folder of the model's state dict")
    parser.add_argument(
        "--bf16", action="store_true", help="also measure a bfloat16 step against float32"
    )
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    from ov2seg_jax.parity.train_step_rows import check_train_step_dir, check_with_bf16

    check = check_with_bf16 if args.bf16 else check_train_step_dir
    return check_dirs(args.fixture_dirs, lambda d: check(d, weights=args.weights))


if __name__ == "__main__":
    sys.exit(main())
