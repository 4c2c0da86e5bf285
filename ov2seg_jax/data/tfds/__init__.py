"""TFDS builders of the video datasets, kept in the repository (as big_vision keeps its own).

Importing this package registers ``lvvis``, ``ovis``, ``ytvis_2021`` and ``ov2seg_synthetic``
with ``tensorflow_datasets``; :mod:`.reader` turns a prepared split into the records the
training pipeline and the evaluation read (``tfds:<name>[/<config>]:<split>`` in a config).
"""

from ov2seg_jax.data.tfds.lvvis import Lvvis
from ov2seg_jax.data.tfds.ovis import Ovis
from ov2seg_jax.data.tfds.synthetic import Ov2segSynthetic
from ov2seg_jax.data.tfds.ytvis_2021 import Ytvis2021

BUILDERS = {b.name: b for b in (Lvvis, Ovis, Ytvis2021, Ov2segSynthetic)}

__all__ = ["BUILDERS", "Lvvis", "Ov2segSynthetic", "Ovis", "Ytvis2021"]
