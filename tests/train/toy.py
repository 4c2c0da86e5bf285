"""Deterministic toy training batches (coloured rectangles) and a tiny training config."""

from __future__ import annotations

import numpy as np

from configs import tiny

COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 80, 230], [230, 220, 40], [200, 40, 200]])


def toy_batch(index: int, batch: int, size: int = 64, max_instances: int = 3) -> dict:
    """Batch ``index``: 1..max_instances rectangles per image, label = colour index."""
    rng = np.random.default_rng(1000 + index)
    image = np.full((batch, size, size, 3), 110, np.uint8)
    masks = np.zeros((batch, max_instances, size, size), bool)
    labels = np.zeros((batch, max_instances), np.int32)
    valid = np.zeros((batch, max_instances), bool)
    for b in range(batch):
        for n in range(rng.integers(1, max_instances + 1)):
            y0, x0 = rng.integers(0, size - 16, 2)
            h, w = rng.integers(10, size // 2, 2)
            m = np.zeros((size, size), bool)
            m[y0 : y0 + h, x0 : x0 + w] = True
            masks[b, :n] &= ~m  # later rectangles occlude earlier ones
            masks[b, n] = m
            labels[b, n] = rng.integers(0, len(COLOURS))
            valid[b, n] = True
            image[b][m] = COLOURS[labels[b, n]]
    return {"image": image, "masks": masks, "labels": labels, "valid": valid}


def toy_batches(batch: int, **kw):
    def batches(start: int):
        k = start
        while True:
            yield toy_batch(k, batch, **kw)
            k += 1

    return batches


def toy_config(num_steps: int = 4, batch_size: int = 2):
    c = tiny.get_config()
    c.train.batch_size = batch_size
    c.train.num_steps = num_steps
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.keep_checkpoints = 2
    c.optimizer.decay_steps = ()
    c.optimizer.base_lr = 1e-3
    c.loss.num_points = 64
    c.loss.federated = False
    return c


def toy_classifier(c) -> np.ndarray:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(c.model.num_classes, c.model.decoder.text_embed_dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
