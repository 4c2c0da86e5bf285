"""OV2Seg R50 on LV-VIS: the released model's evaluation setting.

The original's ``ov2seg_R50_bs16_50ep.yaml`` with the overrides of its ``scripts/eval_video.sh``:
100 queries, ``DEC_LAYERS 7`` (6 decoder layers), 1196 LV-VIS classes with the classifier
``fg_bg_5_10_lvvis_ens.npy``, test min size 480, top 50 instances per video, windows of 10 frames.

Convert the released checkpoint, then predict on a folder of frames:

  python -m ov2seg_jax.main --config configs/ov2seg_r50_lvvis.py --workdir runs/r50 \
      --mode convert --config.convert.source=model_final.pth
  python -m ov2seg_jax.main --config configs/ov2seg_r50_lvvis.py --workdir runs/r50 \
      --mode predict --config.predict.input=path/to/frames

Every other config starts from this one and changes a few fields.
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0

    c.model = ConfigDict()
    c.model.backbone = ConfigDict(
        dict(name="resnet", stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem_width=64)
    )
    c.model.pixel_decoder = ConfigDict(
        dict(
            in_features=("res2", "res3", "res4", "res5"),
            transformer_in_features=("res3", "res4", "res5"),
            conv_dim=256,
            mask_dim=256,
            num_encoder_layers=6,
            num_heads=8,
            num_points=4,
            ffn_dim=1024,
            common_stride=4,
            msda_implementation="auto",
        )
    )
    c.model.decoder = ConfigDict(
        dict(
            hidden_dim=256,
            num_queries=100,
            num_heads=8,
            ffn_dim=2048,
            num_layers=6,  # the original's DEC_LAYERS - 1
            text_embed_dim=512,
            classifier_temperature=50.0,
        )
    )
    c.model.num_classes = 1196

    # The text classifier (C, 512): a .npy path; a relative path that does not exist is looked
    # up in the metadata folder ($OV2SEG_METADATA, default shared/metadata beside the checkout).
    c.classifier = ConfigDict(dict(path="datasets/metadata/fg_bg_5_10_lvvis_ens.npy"))

    c.inference = ConfigDict(
        dict(
            window_size=10,
            top_k=50,
            min_size_test=480,
            max_size_test=1333,
            size_divisibility=32,
            matmul_precision="highest",
        )
    )

    # --mode convert: an original checkpoint (.pth / .pkl) to an Orbax checkpoint in workdir.
    # infer_architecture reads the model sizes off the checkpoint instead of config.model.
    c.convert = ConfigDict(dict(source="", allow_partial=False, infer_architecture=False))
    # Orbax checkpoint of the model variables; empty means WORKDIR/checkpoint.
    c.checkpoint = ConfigDict(dict(path=""))
    # --mode predict: a folder of frames (sorted by name); results go to WORKDIR/predict.
    c.predict = ConfigDict(dict(input="", output=""))
    # --mode evaluate: a YouTube-VIS-format split (the original's layout); results, the per-video
    # cache that makes it resumable and the AP table go to WORKDIR/evaluate. semantics: "lvvis"
    # (the official LV-VIS evaluator) or "ytvis" (YouTube-VIS / OVIS). max_videos=0: all.
    c.evaluate = ConfigDict(
        dict(
            dataset_json="datasets/LVVIS/val/val_instances.json",
            image_root="datasets/LVVIS/val/JPEGImages",
            semantics="lvvis",
            max_videos=0,
        )
    )
    return c
