"""Conversion of the original's checkpoints (detectron2 ``.pth`` / ``.pkl``) to Flax variables."""
