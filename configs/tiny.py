"""A tiny OV2Seg for tests: the R50 code path at toy sizes (one bottleneck per stage, narrow).

  python -m ov2seg_jax.main --config configs/tiny.py --workdir /tmp/tiny --mode predict \
      --config.predict.input=path/to/frames
"""

from ml_collections import ConfigDict

from configs import ov2seg_r50_lvvis


def get_config() -> ConfigDict:
    c = ov2seg_r50_lvvis.get_config()
    c.model.backbone.stage_sizes = (1, 1, 1, 1)
    c.model.backbone.widths = (8, 16, 32, 64)
    c.model.backbone.stem_width = 16
    c.model.pixel_decoder.conv_dim = 64
    c.model.pixel_decoder.mask_dim = 64
    c.model.pixel_decoder.num_encoder_layers = 1
    c.model.pixel_decoder.ffn_dim = 64
    c.model.decoder.hidden_dim = 64
    c.model.decoder.num_queries = 8
    c.model.decoder.ffn_dim = 64
    c.model.decoder.num_layers = 2
    c.model.decoder.text_embed_dim = 32
    c.model.num_classes = 5
    c.classifier.path = ""  # tests pass their own classifier
    c.inference.window_size = 4
    c.inference.top_k = 10
    return c
