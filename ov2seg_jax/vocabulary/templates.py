"""Prompt templates for building text classifiers from category names.

Each template holds exactly one ``{}`` placeholder that receives a cleaned category name. The
default set is a small ImageNet-style prompt ensemble (written for this project) with a few
video-flavoured prompts added, since the classifier scores objects seen in video frames.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of one {}.",
    "a close-up photo of a {}.",
    "a cropped photo of the {}.",
    "a blurry photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a low resolution photo of the {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "there is a {} in the scene.",
    "a video frame showing a {}.",
    "a still from a video of the {}.",
    "a {} in a video.",
)

# The single prompt, for when a quick non-ensembled classifier is wanted.
SINGLE_TEMPLATE: tuple[str, ...] = ("a photo of a {}.",)


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Return ``templates`` as a tuple after checking each has exactly one ``{}`` slot.

    Raises:
        ValueError: naming the offending template, or if ``templates`` is empty or a bare string.
    """
    if isinstance(templates, str):
        raise ValueError(f"templates must be a sequence of strings, not the string {templates!r}")
    result = tuple(templates)
    if not result:
        raise ValueError("templates is empty: at least one prompt template is needed")
    for template in result:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(
                f"prompt template {template!r} must be a string with exactly one '{{}}' placeholder"
            )
        try:
            template.format("x")
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"prompt template {template!r} cannot be formatted: {exc}") from exc
    if len(set(result)) != len(result):
        raise ValueError("templates contains duplicates; each prompt would be counted twice")
    return result
