"""``tfds build`` for this package's builders, with the same arguments.

    python -m data_prep.tfds_build ov2seg_jax/data/tfds/lvvis.py --manual_dir datasets/LVVIS \
        --data_dir tfds

The ``tfds`` command of tensorflow-datasets 4.9.10 imports ``apache_beam`` at start-up for its
``convert_format`` command, even to run ``build``; apache-beam would replace this environment's
protobuf, pillow and pyarrow. This runs the ``build`` command alone, unchanged. With apache-beam
installed, ``tfds build ov2seg_jax/data/tfds/<name>.py ...`` does the same.
"""

from __future__ import annotations

from absl import app
from tensorflow_datasets.scripts.cli import build, cli_utils


def main(args: build.Args) -> None:
    args.execute()


if __name__ == "__main__":
    app.run(main, flags_parser=cli_utils.make_flags_parser(build.Args, description=__doc__))
