"""OV2Seg R50 trained on LVIS base categories: the original's training recipe.

``ov2seg_R50_bs16_50ep_lvis.yaml`` with the overrides of its ``scripts/train.sh``: 100 queries,
``DEC_LAYERS 7`` (6 decoder layers), 1203 LVIS classes with ``fg_bg_5_10_lvis_ens.npy``, the
``lvis_v1_train_norare`` split with repeat-factor sampling (threshold 0.001), large-scale jitter
to 1024x1024, batch 16, 368,750 steps with x0.1 decays at 327,778 and 355,092, AdamW 1e-4 (backbone
x0.1), weight decay 0.05, full-model gradient clipping at 0.01, the MIIL ImageNet-21k ResNet-50 as
initialisation; bfloat16 compute (the original uses float16 AMP).

  python -m ov2seg_jax.main --config configs/ov2seg_r50_lvis.py --workdir runs/r50_lvis \
      --mode train --config.train.init_backbone=models/resnet50_miil_21k.pth

Multi-host (README "Many hosts"): the same command on every host, plus
--config.distributed.coordinator_address=HOST:PORT --config.distributed.num_processes=N
--config.distributed.process_id=I (or --config.distributed.auto_detect=True on Cloud TPU pod
slices, SLURM, Open MPI, Kubernetes); batch_size stays the global batch.
"""

from ml_collections import ConfigDict

from configs import ov2seg_r50_lvvis


def get_config() -> ConfigDict:
    c = ov2seg_r50_lvvis.get_config()
    c.model.num_classes = 1203
    c.classifier.path = "datasets/metadata/fg_bg_5_10_lvis_ens.npy"
    c.train.compute_dtype = "bfloat16"
    c.train.init_backbone = "models/resnet50_miil_21k.pth"
    c.train.checkpoint_every = 1000
    c.train.eval_every = 0  # the original evaluates LVIS images every 160,000 steps
    return c
