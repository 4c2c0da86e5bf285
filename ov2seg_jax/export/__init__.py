"""Deployment: the per-window network exported as StableHLO (``jax.export``) and as a TF
SavedModel, and loaded back as a :class:`~ov2seg_jax.inference.predictor.VideoPredictor` backend.

* :mod:`~ov2seg_jax.export.buckets`: shape buckets ``WINDOWxHEIGHTxWIDTHxCLASSES``.
* :mod:`~ov2seg_jax.export.writer`: ``--mode export`` (artifacts, weights, ``manifest.json``).
* :mod:`~ov2seg_jax.export.saved_model`: the TF SavedModel through ``jax2tf``.
* :mod:`~ov2seg_jax.export.loaded`: :class:`ExportedModel`, an export folder read back.
"""
