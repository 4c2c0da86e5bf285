"""The built-in synthetic open-vocabulary video dataset: coloured shapes that move and occlude.

Every category is a composition ``"<colour> <shape>"`` of 8 colours and 8 shapes (64 categories,
ids ``1 + 8 * colour + shape``). Sixteen pairs are held out as *novel*: colour ``c`` is novel with
shapes ``(c + 2) % 8`` and ``(c + 5) % 8`` (a Latin-square choice, so every colour and every shape
has exactly two novel pairs and also appears in six base pairs). Training videos show only base
categories; validation videos show both, with each novel category several times, so a model
trained with a compositional text classifier (:mod:`ov2seg_jax.vocabulary.compositional`) can be
scored on combinations it never saw.

A video: ``num_frames`` frames of ``height x width`` with 1-4 filled shapes of distinct sizes on a
smooth, noisy, low-saturation background. Shapes move with constant velocity and bounce off the
borders (they always stay inside the frame); list order is depth order (later objects cover
earlier ones). An instance's mask is its *visible* pixels; a fully covered instance has a null
segmentation in that frame. Everything is a pure function of ``(spec, seed)``.

On disk (the LV-VIS layout, readable by the LV-VIS-format readers and the video evaluator)::

    <root>/train/JPEGImages/<video>/<frame>.jpg     <root>/train/train_instances.json
    <root>/val/JPEGImages/<video>/<frame>.jpg       <root>/val/val_instances.json
    <root>/categories.json   [{id, name, partition, colour, shape}]
    <root>/categories.txt    one name per line, in id order (a vocabulary file)
    <root>/text_classifier.npy   (64, text_dim) float32 compositional classifier, id order
    <root>/manifest.json     spec, seed and file list; written last (marks a complete build)

``partition`` follows LV-VIS's integer codes, which the evaluator reads (0/1 base, 2/3 novel):
base categories carry :data:`PARTITION_BASE` (0), novel ones :data:`PARTITION_NOVEL` (2).

The package in parts: :mod:`.spec` (the sizes), :mod:`.categories` (the category table and the
per-video category draws), :mod:`.render` (scenes, shapes, occlusion, pixels) and :mod:`.build`
(the annotations and the on-disk build). Everything public is importable from the package.
"""

from ov2seg_jax.data.synthetic.build import (
    FORMAT_VERSION,
    build_synthetic_dataset,
    dataset_paths,
    is_complete,
    read_manifest,
    track_annotation,
    write_split,
)
from ov2seg_jax.data.synthetic.categories import (
    COLOURS,
    NOVEL_SHAPE_OFFSETS,
    PARTITION_BASE,
    PARTITION_NOVEL,
    SHAPES,
    assign_categories,
    categories,
    category_id,
    category_names,
    novel_pairs,
    split_category_ids,
)
from ov2seg_jax.data.synthetic.render import (
    NOISE_AMPLITUDE,
    Scene,
    SceneObject,
    full_masks,
    object_centre,
    occlude,
    render_scene,
    sample_scene,
    shape_mask,
    video_scene,
    visible_masks,
)
from ov2seg_jax.data.synthetic.spec import SPLITS, SyntheticSpec, check_split

__all__ = [
    "COLOURS",
    "FORMAT_VERSION",
    "NOISE_AMPLITUDE",
    "NOVEL_SHAPE_OFFSETS",
    "PARTITION_BASE",
    "PARTITION_NOVEL",
    "SHAPES",
    "SPLITS",
    "Scene",
    "SceneObject",
    "SyntheticSpec",
    "assign_categories",
    "build_synthetic_dataset",
    "categories",
    "category_id",
    "category_names",
    "check_split",
    "dataset_paths",
    "full_masks",
    "is_complete",
    "novel_pairs",
    "object_centre",
    "occlude",
    "read_manifest",
    "render_scene",
    "sample_scene",
    "shape_mask",
    "split_category_ids",
    "track_annotation",
    "video_scene",
    "visible_masks",
    "write_split",
]
