"""OV2Seg with the Swin-B backbone on LV-VIS (the paper's stronger model).

Mask2Former's Swin-B settings (embed 128, depths 2/2/18/2, heads 4/8/16/32, window 12, pretrain
size 384) with the R50 head; everything else as ``ov2seg_r50_lvvis``:

  python -m ov2seg_jax.main --config configs/ov2seg_swinb_lvvis.py --workdir runs/swinb \
      --mode convert --config.convert.source=model_final_swinb.pth
"""

from ml_collections import ConfigDict

from configs import ov2seg_r50_lvvis

# Swin's LayerNorms and relative-position tables take no weight decay in the original's builder.
SWIN_BACKBONE_RULES = (
    (r"backbone/(.+/)?norm\d*/(scale|bias)", 0.1, 0.0, "backbone LayerNorm (WEIGHT_DECAY_NORM)"),
    (r"backbone/.+/relative_position_bias_table", 0.1, 0.0, "Swin position tables"),
    (r"backbone/.*", 0.1, 0.05, "backbone (BACKBONE_MULTIPLIER)"),
)


def get_config() -> ConfigDict:
    c = ov2seg_r50_lvvis.get_config()
    c.model.backbone = ConfigDict(
        dict(
            name="swin",
            embed_dim=128,
            depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32),
            window_size=12,
            drop_path_rate=0.3,
            # window attention core: "auto" (native on CPU when built, float32; else the XLA
            # reference), "xla" or "cpu" (kernels/window_attention)
            attention_implementation="auto",
        )
    )
    c.optimizer.rules = SWIN_BACKBONE_RULES + ov2seg_r50_lvvis.HEAD_RULES
    return c
