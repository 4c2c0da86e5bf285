"""The built-in default: a small OV2Seg trained and evaluated on the synthetic videos, on a CPU.

  python -m ov2seg_jax.main --config configs/synthetic.py --workdir runs/synthetic

runs ``--mode all``: build the synthetic dataset into WORKDIR/data (if absent) and prepare it as the
TFDS dataset ``ov2seg_synthetic`` (ArrayRecord) in WORKDIR/tfds -> train on its base
categories -> evaluate video AP (all / base / novel) on the held-out videos -> predict one held-out
video with the full vocabulary (novel names included) -> overlay GIF, results JSON and a plot of
the loss and AP. Running it again resumes. ``{workdir}`` in any path below is replaced by the
``--workdir`` folder.

The network is the R50 OV2Seg code path at a size that trains in minutes on two CPU cores: one
bottleneck per ResNet stage (widths 16..128), a 64-channel pixel decoder with two deformable
encoder layers, 16 queries and three masked-attention decoder layers, 128x128 frames. The text
classifier (512-d) comes from the dataset's compositional text encoder. Training differs from the
LVIS recipe where a from-scratch toy model needs it: a larger learning rate (no pretrained backbone,
so no backbone multiplier), mild scale jitter (objects are 18-40 px), 1024 loss points (the masks
are predicted at 32x32); the federated class loss draws from the categories with training
annotations (novel names are never negatives).
"""

from ml_collections import ConfigDict

from configs import ov2seg_r50_lvvis

DATA = "{workdir}/data"
TFDS = "{workdir}/tfds"


def get_config() -> ConfigDict:
    c = ov2seg_r50_lvvis.get_config()
    c.default_mode = "all"

    # Trained from scratch with frozen norms: a zero last-norm scale (the original's fresh init)
    # would silence every residual branch for good, so the scales start at 1.
    c.model.backbone = ConfigDict(
        dict(
            name="resnet",
            stage_sizes=(1, 1, 1, 1),
            widths=(16, 32, 64, 128),
            stem_width=16,
            zero_init_last_bn=False,
        )
    )
    pd = c.model.pixel_decoder
    pd.conv_dim, pd.mask_dim, pd.num_encoder_layers, pd.num_heads, pd.ffn_dim = 64, 64, 2, 4, 128
    dec = c.model.decoder
    dec.hidden_dim, dec.num_queries, dec.num_heads, dec.ffn_dim, dec.num_layers = 64, 16, 4, 128, 3
    dec.text_embed_dim = 512
    c.model.num_classes = 64

    # The synthetic dataset (ov2seg_jax/data/synthetic/): built by --mode all when absent, then
    # prepared as the TFDS dataset ov2seg_synthetic in tfds_data_dir, which training and
    # evaluation read.
    c.synthetic = ConfigDict(
        dict(root=DATA, seed=0, num_train_videos=300, num_val_videos=48, tfds_data_dir=TFDS)
    )
    c.classifier.path = DATA + "/text_classifier.npy"

    c.data.dataset = "tfds:ov2seg_synthetic:train"
    c.data.root = TFDS
    c.data.split = "train"
    c.data.base_only = True
    c.data.image_size = 128
    c.data.min_scale = 0.7
    c.data.max_scale = 1.3
    c.data.max_instances = 8
    c.data.repeat_factor_threshold = 0.0

    c.train.batch_size = 8
    c.train.num_steps = 2500
    c.train.log_every = 10
    c.train.checkpoint_every = 250
    c.train.keep_checkpoints = 2
    c.train.eval_every = 500
    c.train.eval_max_videos = 16  # the periodic evaluation's share of the held-out videos
    c.train.best_metric = ""
    c.train.init_image_size = 64

    c.optimizer.base_lr = 5e-4
    c.optimizer.rules = ov2seg_r50_lvvis.resnet_optimizer_rules(backbone_lr_mult=1.0)
    c.optimizer.warmup_iters = 50
    c.optimizer.decay_steps = (2000, 2300)

    c.loss.num_points = 1024
    c.loss.federated = True
    c.loss.num_fed_classes = 50
    c.loss.class_frequency_path = ""  # "": the training split's own image counts

    c.inference.window_size = 8
    c.inference.top_k = 10
    c.inference.min_size_test = 128
    c.inference.max_size_test = 128
    c.inference.matmul_precision = "default"

    c.evaluate.dataset = "tfds:ov2seg_synthetic:val"
    c.evaluate.root = TFDS
    # The same split as files: the first video's frame folder is the predict stage's input.
    c.evaluate.dataset_json = DATA + "/val/val_instances.json"
    c.evaluate.image_root = DATA + "/val/JPEGImages"
    c.evaluate.semantics = "lvvis"

    c.predict.input = ""  # "": the first held-out video
    c.predict.vocabulary = DATA + "/categories.txt"
    c.predict.overlay = "gif"
    c.predict.score_threshold = 0.5
    c.vocabulary.encoder = "compositional"
    return c
