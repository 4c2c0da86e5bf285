"""OV2Seg Swin-B trained on LVIS base categories: the R50 LVIS recipe with the Swin-B backbone.

As ``ov2seg_r50_lvis`` (same data, schedule, losses and optimizer) with Mask2Former's Swin-B
(embed 128, depths 2/2/18/2, heads 4/8/16/32, window 12, drop-path 0.3) initialised from the
official Swin ImageNet-22k release (``swin_base_patch4_window12_384_22k.pth``, its ``model``
dict; relative-position indices are recomputed, every key accounted for):

  python -m ov2seg_jax.main --config configs/ov2seg_swinb_lvis.py --workdir runs/swinb_lvis \
      --mode train --config.train.init_backbone=models/swin_base_patch4_window12_384_22k.pth
"""

from ml_collections import ConfigDict

from configs import ov2seg_r50_lvis, ov2seg_swinb_lvvis


def get_config() -> ConfigDict:
    c = ov2seg_r50_lvis.get_config()
    swin = ov2seg_swinb_lvvis.get_config()
    c.model.backbone = swin.model.backbone
    c.optimizer.rules = swin.optimizer.rules
    c.train.init_backbone = "models/swin_base_patch4_window12_384_22k.pth"
    return c
