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

# (pattern, lr multiplier, weight decay, reason) over '/'-joined parameter paths; the original's
# train_net.Trainer.build_optimizer: BACKBONE_MULTIPLIER 0.1 for modules named '*backbone*',
# WEIGHT_DECAY_NORM 0 for LayerNorm/GroupNorm, WEIGHT_DECAY_EMBED 0 for nn.Embedding, WEIGHT_DECAY
# 0.05 for the rest (it has no bias rule: biases are decayed).
HEAD_RULES = (
    (
        r"(pixel_decoder|predictor)/(.+/)?\w*norm\d*/(scale|bias)",
        1.0,
        0.0,
        "LayerNorm / GroupNorm (WEIGHT_DECAY_NORM)",
    ),
    (
        r"predictor/(query_feat|query_embed|level_embed)",
        1.0,
        0.0,
        "nn.Embedding (WEIGHT_DECAY_EMBED)",
    ),
    (
        r".*",
        1.0,
        0.05,
        "the rest, biases and the pixel decoder's bare level_embed included (WEIGHT_DECAY)",
    ),
)


def resnet_optimizer_rules(backbone_lr_mult: float = 0.1) -> tuple:
    """The rules of a ResNet model (its batch norms are frozen buffers, not parameters)."""
    backbone = (r"backbone/.*", backbone_lr_mult, 0.05, "backbone (BACKBONE_MULTIPLIER)")
    return (backbone, *HEAD_RULES)


def get_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.default_mode = "predict"  # the --mode when none is given

    c.model = ConfigDict()
    # zero_init_last_bn: a fresh (not pretrained) backbone starts as timm's does, with the scale
    # of every block's last frozen batch norm at 0, as the original; a pretrained file replaces it.
    c.model.backbone = ConfigDict(
        dict(
            name="resnet",
            stage_sizes=(3, 4, 6, 3),
            widths=(64, 128, 256, 512),
            stem_width=64,
            zero_init_last_bn=True,
        )
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

    # jax's persistent compilation cache (a second process reuses the first one's executables;
    # see ov2seg_jax/compile_cache.py); "" turns it off.
    c.compilation_cache_dir = "~/.cache/ov2seg-jax/xla"

    c.inference = ConfigDict(
        dict(
            window_size=10,
            top_k=50,
            min_size_test=480,
            max_size_test=1333,
            size_divisibility=32,
            matmul_precision="highest",
            # An export folder (--mode export) to run instead of the checkpoint: predict and
            # evaluate then use its StableHLO networks, not the Python model code. Empty: off.
            export="",
        )
    )

    # --mode train (see configs/ov2seg_r50_lvis.py for the original's LVIS schedule).
    # batch_size is global (all hosts and devices); compute_dtype "bfloat16" runs the forward and
    # backward passes in bfloat16 with float32 master weights; init_backbone: a pretrained
    # backbone checkpoint (timm ResNet-50 / Swin ImageNet-22k) loaded before step 0. eval_every:
    # video AP on config.evaluate's split (its first eval_max_videos videos; 0: all) every so
    # many steps, logged as eval/AP, eval/AP_base, eval/AP_novel.
    c.train = ConfigDict(
        dict(
            batch_size=16,
            num_steps=368_750,
            log_every=20,
            checkpoint_every=1000,
            keep_checkpoints=3,
            eval_every=0,
            eval_max_videos=0,
            best_metric="",
            compute_dtype="float32",
            init_backbone="",
            init_image_size=64,
        )
    )
    # AdamW with the original's parameter groups as rules (ov2seg_jax/train/optimizer.py: the
    # first rule whose pattern re.fullmatch-es a parameter path decides its lr multiplier and
    # weight decay), full-model gradient clipping, detectron2's WarmupMultiStepLR.
    c.optimizer = ConfigDict(
        dict(
            base_lr=1e-4,
            rules=resnet_optimizer_rules(),
            clip_norm=0.01,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            warmup_iters=10,
            warmup_factor=1.0,
            decay_steps=(327_778, 355_092),
            gamma=0.1,
        )
    )
    # The criterion: matcher costs and loss weights (class 2, objectness 2, mask BCE 5, dice 5),
    # point-sampled mask losses, the federated class loss over LVIS frequencies.
    c.loss = ConfigDict(
        dict(
            class_weight=2.0,
            object_weight=2.0,
            mask_weight=5.0,
            dice_weight=5.0,
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            federated=True,
            num_fed_classes=50,
            class_loss_factor=1.7,
            object_empty_weight=0.4,
            class_frequency_path="datasets/metadata/lvis_v1_train_cat_info.json",
        )
    )
    # Multi-host (README "Many hosts"): coordinator_address (HOST:PORT of process 0),
    # num_processes and process_id, or auto_detect on Cloud TPU / SLURM / Open MPI / Kubernetes.
    # init_timeout_s: how long to wait for the whole group at start-up; heartbeat_timeout_s: a
    # process silent this long is declared dead and the others stop; shutdown_timeout_s: how long
    # a finished process waits for the others. fsdp shards large parameters over devices.
    c.distributed = ConfigDict(
        dict(
            coordinator_address="",
            num_processes=1,
            process_id=0,
            auto_detect=False,
            init_timeout_s=300,
            heartbeat_timeout_s=100,
            shutdown_timeout_s=300,
            fsdp=False,
        )
    )

    # --mode convert: an original checkpoint (.pth / .pkl) to an Orbax checkpoint in workdir.
    # infer_architecture reads the model sizes off the checkpoint instead of config.model.
    c.convert = ConfigDict(dict(source="", allow_partial=False, infer_architecture=False))
    # --mode export: the per-window network as jax.export StableHLO (one artifact per bucket,
    # "WINDOWxPADDED_HEIGHTxPADDED_WIDTHxCLASSES", comma-separated, e.g. "10x480x864x1196"), for
    # platforms "cpu,cuda,tpu", plus a TF SavedModel (jax2tf) if saved_model; output: the folder
    # (empty means WORKDIR/export).
    c.export = ConfigDict(dict(buckets="", platforms="cpu,cuda,tpu", saved_model=True, output=""))
    # Orbax checkpoint of the model variables; empty means WORKDIR/checkpoint.
    c.checkpoint = ConfigDict(dict(path=""))
    # --mode predict: one video -> results.json, categories.json, tracks.txt, overlay.
    #   input: a video file (mp4, avi, webm, mov, mkv, gif ...) or a folder of frames (by name).
    #   output: the output folder; empty means WORKDIR/predict.
    #   vocabulary: "cat,dog,skateboard", a .txt file (one name a line), a classifier .npy, or a
    #     dataset name (lvvis, ytvis19, ytvis21, ovis, coco, lvis: the shipped metadata); empty
    #     means classifier.path, else the classifier saved with the model.
    #   overlay: "mp4", "gif" or "none"; score_threshold: lowest score drawn and tabulated;
    #   fps: overlay frame rate (0: the video's own, 10 for frame folders); cache_mb: network
    #   outputs kept for the read-out pass, longer videos are run through the network twice.
    c.predict = ConfigDict(
        dict(
            input="",
            output="",
            vocabulary="",
            overlay="mp4",
            score_threshold=0.3,
            fps=0.0,
            cache_mb=512,
        )
    )
    # Text classifiers built from names (predict.vocabulary): encoder "clip" (the Flax CLIP text
    # tower, no torch; clip_model is a local directory or a hub id of a Hugging Face CLIP
    # checkpoint), "clip_torch" (the same through transformers' PyTorch CLIP: a cross-check,
    # needs torch) or "compositional" (word vectors,
    # no weights; the synthetic data's encoder); templates "ensemble", "single" or a .txt file of
    # prompts with one "{}" each; cache_dir: classifier cache (empty: $OV2SEG_CACHE or
    # ~/.cache/ov2seg_jax/classifiers).
    c.vocabulary = ConfigDict(
        dict(
            encoder="clip",
            clip_model="openai/clip-vit-base-patch32",
            templates="ensemble",
            cache_dir="",
        )
    )
    # --mode evaluate: a YouTube-VIS-format split (the original's layout); results, the per-video
    # cache that makes it resumable and the AP table go to WORKDIR/evaluate. semantics: "lvvis"
    # (the official LV-VIS evaluator) or "ytvis" (YouTube-VIS / OVIS). max_videos=0: all.
    # dataset: "" reads dataset_json + image_root; "tfds:<name>[/<config>]:<split>" reads a split
    # prepared by data_prep.prepare_tfds from the TFDS data dir root ("": TFDS's default).
    c.evaluate = ConfigDict(
        dict(
            dataset="",
            root="",
            dataset_json="datasets/LVVIS/val/val_instances.json",
            image_root="datasets/LVVIS/val/JPEGImages",
            semantics="lvvis",
            max_videos=0,
        )
    )
    # --mode train input pipeline (ov2seg_jax/data/pipeline.py); defaults are the original's LVIS
    # recipe. dataset: a registered name (lvis_v1_train_norare, lvvis_train, ytvis_2019_train, ...:
    # ov2seg_jax/data/registry.py) or "lvvis_format" for any folder in the LV-VIS layout (the
    # built-in synthetic set), read from root/<split>; base_only drops novel-category annotations.
    # "tfds:<name>[/<config>]:<split>" reads a prepared TFDS split, root being the TFDS data dir.
    # Large-scale jitter: scale U(min_scale, max_scale) of image_size, crop/pad to image_size
    # (pad_value), horizontal flip if random_flip, resize interpolation "bilinear" or "nearest".
    # max_instances: instances per example kept (the rest counted as truncated).
    # repeat_factor_threshold: repeat-factor sampling (0: off). clip_length: frames per example (1: images; T>1: clips from one video, frames within
    # clip_frame_range of a reference frame). num_parallel_calls (-1: autotune), prefetch
    # (batches), shuffle (per-epoch permutation).
    c.data = ConfigDict(
        dict(
            dataset="lvis_v1_train_norare",
            root="datasets",
            split="train",
            base_only=False,
            image_size=1024,
            min_scale=0.1,
            max_scale=2.0,
            random_flip=True,
            max_instances=100,
            repeat_factor_threshold=0.001,
            clip_length=1,
            clip_frame_range=20,
            pad_value=128.0,
            interpolation="bilinear",
            num_parallel_calls=-1,
            prefetch=2,
            shuffle=True,
        )
    )
    return c
