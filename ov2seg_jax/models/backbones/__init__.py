"""Backbones: each maps NHWC images to a dict of feature maps ``res2``..``res5`` (strides 4..32)."""

# Output stride of each feature map; every backbone here produces these four.
FEATURE_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
