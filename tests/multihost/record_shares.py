"""The entry point, with each host's training sample ids recorded (for the share test).

Every batch a host's input pipeline yields appends one line ``[step, [ids...]]`` to
``$OV2SEG_SHARES_DIR/shares.<process index>.jsonl``; then ``ov2seg_jax.main`` runs as usual.
"""

import json
import os

import jax
from absl import app

from ov2seg_jax import main
from ov2seg_jax.data import pipeline

_next = pipeline.TrainIterator.__next__


def _recording_next(self):
    batch = _next(self)
    self.recorded = getattr(self, "recorded", 0) + 1
    path = os.path.join(os.environ["OV2SEG_SHARES_DIR"], f"shares.{jax.process_index()}.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps([self.recorded, [int(i) for i in self.sample_ids]]) + "\n")
    return batch


pipeline.TrainIterator.__next__ = _recording_next

if __name__ == "__main__":
    app.run(main.main)
