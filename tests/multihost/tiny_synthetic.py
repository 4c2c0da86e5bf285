"""The synthetic config at test size: the tiny network on 64x64 crops of a few synthetic videos.

  python -m ov2seg_jax.main --config tests/multihost/tiny_synthetic.py --workdir W --mode train \
      --config.data.root=DATA --config.classifier.path=DATA/text_classifier.npy

Global batch 4 (one example per device of 2 processes x 2 devices), 6 steps, a checkpoint every
2 steps, a log line every step; no periodic evaluation. Start-up timeouts short enough that a test
of a broken group ends in seconds.
"""

from configs import synthetic, tiny


def get_config():
    c = synthetic.get_config()
    c.model = tiny.get_config().model
    c.model.decoder.text_embed_dim = 512  # the synthetic dataset's text classifier
    c.model.num_classes = 64
    c.data.image_size = 64
    c.data.num_parallel_calls = 2
    c.train.batch_size = 4
    c.train.num_steps = 6
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.keep_checkpoints = 3
    c.train.eval_every = 0
    c.optimizer.warmup_iters = 0
    c.optimizer.decay_steps = ()
    c.optimizer.base_lr = 1e-3
    c.loss.num_points = 64
    c.inference.window_size = 2
    c.inference.min_size_test = 64
    c.inference.max_size_test = 64
    c.distributed.init_timeout_s = 30
    c.distributed.heartbeat_timeout_s = 10
    # The first process to finish waits at the shutdown barrier for the others' last steps, final
    # save and input-pipeline teardown; on a loaded 2-core machine that took over 30 s once.
    c.distributed.shutdown_timeout_s = 120
    return c
