"""Tests for ov2seg_jax.vocabulary: names, templates, cache and the CLIP text classifier.

Everything runs offline on a tiny randomly initialised CLIP text model saved to a temp folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ov2seg_jax.vocabulary import (
    DEFAULT_TEMPLATES,
    SINGLE_TEMPLATE,
    build_text_classifier,
    classifier_for,
    clean_name,
    clip_text,
    default_cache_dir,
    load_vocabulary,
    prepare_names,
    validate_templates,
)
from tests.inference.conftest import write_tiny_clip

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("a photo of a {}.", "a blurry photo of the {}.", "a video frame showing a {}.")
PROJ_DIM = 16


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random tiny CLIP text model + char-level tokenizer saved with save_pretrained."""
    return write_tiny_clip(str(tmp_path_factory.mktemp("tiny_clip")), projection_dim=PROJ_DIM)


def _reference_row(model_dir: str, name: str, templates: tuple[str, ...]) -> np.ndarray:
    """The classifier row for ``name``, computed one prompt at a time straight from transformers."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.CLIPTextModelWithProjection.from_pretrained(model_dir).eval()
    embeddings = []
    with torch.no_grad():
        for template in templates:
            ids = tokenizer(template.format(name), return_tensors="pt")["input_ids"]
            emb = model(input_ids=ids).text_embeds[0].double().numpy()
            embeddings.append(emb / np.linalg.norm(emb))
    mean = np.mean(embeddings, axis=0)
    return mean / np.linalg.norm(mean)


# --- names and templates -------------------------------------------------------------------------


def test_clean_name() -> None:
    assert clean_name("aerosol_can") == "aerosol can"
    assert clean_name("bow_(weapon)") == "bow (weapon)"
    assert clean_name("bow(weapon)") == "bow (weapon)"
    assert clean_name("  teddy__bear ") == "teddy bear"
    assert clean_name("cover_( shield )") == "cover (shield)"
    assert clean_name("Skateboard") == "Skateboard"


def test_load_vocabulary_string_and_file(tmp_path: Path) -> None:
    assert load_vocabulary("cat, dog,skate_board") == ["cat", "dog", "skate board"]
    assert load_vocabulary("cat,dog,") == ["cat", "dog"]
    assert load_vocabulary("cat") == ["cat"]
    path = tmp_path / "names.txt"
    path.write_text("# my classes\ncat\n\n  aerosol_can  \n# skipped\nbow_(weapon)\n")
    expected = ["cat", "aerosol can", "bow (weapon)"]
    assert load_vocabulary(str(path)) == expected
    assert load_vocabulary(path) == expected
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_vocabulary(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "empty"),
        (["cat", ""], "entry 1"),
        (["cat", " _ "], "empty after cleaning"),
        (["cat", "dog", "Cat"], "duplicates entry 0"),
        (["aerosol_can", "aerosol can"], "duplicates"),
    ],
)
def test_bad_vocabularies(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_names(names)


def test_bad_vocabulary_strings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        load_vocabulary("cat,,dog")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty.txt"):
        load_vocabulary(str(empty))
    with pytest.raises(ValueError, match="expected a sequence"):
        prepare_names("cat")


def test_templates() -> None:
    assert 10 <= len(DEFAULT_TEMPLATES) <= 20
    assert validate_templates(DEFAULT_TEMPLATES) == DEFAULT_TEMPLATES
    for bad in (["a photo"], ["{} and {}"], [], "a photo of a {}.", ["a {}", "a {}"]):
        with pytest.raises(ValueError):
            validate_templates(bad)


def test_default_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OV2SEG_CACHE", raising=False)
    assert default_cache_dir().endswith(os.path.join(".cache", "ov2seg_jax", "classifiers"))
    monkeypatch.setenv("OV2SEG_CACHE", str(tmp_path))
    assert default_cache_dir() == str(tmp_path)


# --- the classifier ------------------------------------------------------------------------------


def test_classifier_values_and_order(tiny_clip: str, tmp_path: Path) -> None:
    names = ["cat", "dog", "aerosol_can"]
    clf = build_text_classifier(names, tiny_clip, templates=TEMPLATES, cache_dir=tmp_path)
    assert clf.shape == (3, PROJ_DIM) and clf.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(clf, axis=1), 1.0, atol=1e-5)
    for row, name in zip(clf, ["cat", "dog", "aerosol can"], strict=True):
        np.testing.assert_allclose(row, _reference_row(tiny_clip, name, TEMPLATES), atol=2e-5)
    assert not np.allclose(clf[0], clf[1])

    # Row order follows the names; small batches give the same result as one big batch.
    reversed_clf = build_text_classifier(
        names[::-1], tiny_clip, templates=TEMPLATES, batch_size=2, use_cache=False
    )
    np.testing.assert_allclose(reversed_clf, clf[::-1], atol=1e-5)


def test_cache_hit_skips_encoder(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OV2SEG_CACHE", str(tmp_path / "env_cache"))
    first = build_text_classifier(["cat", "dog"], tiny_clip, templates=TEMPLATES)
    files = list((tmp_path / "env_cache").glob("*.npy"))
    assert len(files) == 1 and len(files[0].stem) == 64  # sha256 hex
    assert not list((tmp_path / "env_cache").glob(".tmp-*"))

    def unloadable(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder must not be loaded on a cache hit")

    monkeypatch.setattr(clip_text.FlaxClipTextEncoder, "__init__", unloadable)
    monkeypatch.setattr(clip_text.ClipTextEncoder, "__init__", unloadable)
    second = build_text_classifier(["cat", "dog"], tiny_clip, templates=TEMPLATES)
    assert second.tobytes() == first.tobytes()
    # Same names after cleaning -> same key.
    assert build_text_classifier(["cat ", "dog"], tiny_clip, templates=TEMPLATES).shape == (2, 16)
    # Different names or templates miss the cache and need the (now unloadable) encoder.
    with pytest.raises(AssertionError, match="must not be loaded"):
        build_text_classifier(["cat", "bird"], tiny_clip, templates=TEMPLATES)
    with pytest.raises(AssertionError, match="must not be loaded"):
        build_text_classifier(["cat", "dog"], tiny_clip, templates=TEMPLATES[:2])


def test_bad_model_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "no_such_clip")
    with pytest.raises(OSError, match="no_such_clip") as info:
        build_text_classifier(["cat"], missing, cache_dir=tmp_path)
    assert "local directory" in str(info.value)
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(OSError, match="empty_model"):
        build_text_classifier(["cat"], str(empty), use_cache=False)
    with pytest.raises(OSError, match="empty_model"):
        build_text_classifier(["cat"], str(empty), cache_dir=tmp_path)


def test_bad_inputs_fail_before_loading(tiny_clip: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        build_text_classifier([], tiny_clip, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="duplicates"):
        build_text_classifier(["cat", "cat"], tiny_clip, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        build_text_classifier(["cat"], tiny_clip, cache_dir=tmp_path, batch_size=0)


def test_cli(tiny_clip: str, tmp_path: Path) -> None:
    names_file = tmp_path / "classes.txt"
    names_file.write_text("cat\n# comment\ndog\n")
    out = tmp_path / "out" / "classifier"  # no .npy suffix: written to exactly this path
    env = {**os.environ, "OV2SEG_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "data_prep.build_classifier", "--clip", tiny_clip]
    result = subprocess.run(
        [*cmd, "--names-file", str(names_file), "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and "(2, 16)" in result.stdout
    from_cli = np.load(out)
    expected = build_text_classifier(["cat", "dog"], tiny_clip, cache_dir=tmp_path / "cache")
    assert from_cli.tobytes() == expected.tobytes()

    bad = subprocess.run(
        [*cmd[:-2], "--names", "cat,dog", "--clip", str(tmp_path / "nope"), "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_full_clip_checkpoint_and_text_only_checkpoint(tiny_clip: str, tmp_path: Path) -> None:
    """A full CLIPModel directory (the usual download) works; one without projection errors."""
    text_config = transformers.CLIPTextConfig.from_pretrained(tiny_clip).to_dict()
    vision_config = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=16,
    )
    config = transformers.CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=8
    )
    torch.manual_seed(1)
    full = transformers.CLIPModel(config).eval()
    full_dir = tmp_path / "full_clip"
    full.save_pretrained(full_dir)
    transformers.AutoTokenizer.from_pretrained(tiny_clip).save_pretrained(full_dir)
    clf = build_text_classifier(["cat"], str(full_dir), templates=TEMPLATES[:1], use_cache=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(full_dir)
    with torch.no_grad():
        ids = tokenizer([TEMPLATES[0].format("cat")], return_tensors="pt")["input_ids"]
        hidden = full.text_model(input_ids=ids).pooler_output
        ref = full.text_projection(hidden)[0].numpy()
    np.testing.assert_allclose(clf[0], ref / np.linalg.norm(ref), atol=1e-5)

    text_only = tmp_path / "text_only"
    transformers.CLIPTextModel(transformers.CLIPTextConfig(**text_config)).save_pretrained(
        text_only
    )
    transformers.AutoTokenizer.from_pretrained(tiny_clip).save_pretrained(text_only)
    with pytest.raises(OSError, match="text_only.*text_projection"):
        build_text_classifier(["cat"], str(text_only), use_cache=False)


# --- user vocabulary specs: classifier_for ---------------------------------------------------------


def test_classifier_for_names_with_clip_matches_the_builder(tiny_clip: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    cfg = {"encoder": "clip", "clip_model": tiny_clip, "templates": "single", "cache_dir": cache}
    names, clf = classifier_for("cat, skate_board,dog", cfg, PROJ_DIM)
    assert names == ["cat", "skate board", "dog"]
    expected = build_text_classifier(names, tiny_clip, SINGLE_TEMPLATE, use_cache=False)
    np.testing.assert_allclose(clf, expected, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # built once, cached
    # A names file and a templates file give the same classifier for the same names.
    (tmp_path / "names.txt").write_text("cat\nskate_board\ndog\n")
    (tmp_path / "templates.txt").write_text("a photo of a {}.\n")
    cfg["templates"] = str(tmp_path / "templates.txt")
    again = classifier_for(str(tmp_path / "names.txt"), cfg, PROJ_DIM)[1]
    np.testing.assert_array_equal(again, clf)
    with pytest.raises(ValueError, match=r"\(num_classes >= 1, 24\)"):
        classifier_for("cat,dog", cfg, 24)  # the text model's width does not fit the model


def test_classifier_for_compositional_names() -> None:
    from ov2seg_jax.vocabulary.compositional import encode_names

    names, clf = classifier_for("red circle,blue_star", {"encoder": "compositional"}, 32)
    assert names == ["red circle", "blue star"] and clf.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(clf, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(clf, encode_names(["red circle", "blue star"], dim=32))
    with pytest.raises(ValueError, match="vocabulary.encoder must be one of"):
        classifier_for("cat", {"encoder": "word2vec"}, 32)


def test_classifier_for_npy_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((3, 8)).astype(np.float32)
    np.save(tmp_path / "mine.npy", weights)
    names, clf = classifier_for(str(tmp_path / "mine.npy"), None, 8)
    assert names == ["class 1", "class 2", "class 3"]  # no names beside it
    np.testing.assert_array_equal(clf, weights)
    (tmp_path / "mine.txt").write_text("red_box\nblue box\ncat\n")  # names beside it
    assert classifier_for(str(tmp_path / "mine.npy"), None, 8)[0] == ["red box", "blue box", "cat"]
    (tmp_path / "mine.txt").write_text("red box\nblue box\n")
    with pytest.raises(ValueError, match="mine.txt names 2 categories .* 3 rows"):
        classifier_for(str(tmp_path / "mine.npy"), None, 8)
    with pytest.raises(
        ValueError, match=r"mine.npy has shape \(3, 8\); .*\(num_classes >= 1, 16\)"
    ):
        classifier_for(str(tmp_path / "mine.npy"), None, 16)
    np.save(tmp_path / "nan.npy", np.full((2, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="nan.npy must hold finite"):
        classifier_for(str(tmp_path / "nan.npy"), None, 8)
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read classifier .*broken.npy"):
        classifier_for(str(tmp_path / "broken.npy"), None, 8)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        classifier_for(str(tmp_path / "missing.npy"), None, 8)
    for empty in ("", "  ", ",,"):
        with pytest.raises(ValueError, match="empty"):
            classifier_for(empty, None, 8)


@pytest.mark.parametrize(
    ("dataset", "count", "first", "last"),
    [
        ("lvvis", 1196, "accordion", None),
        ("ytvis19", 40, "person", "tennis racket"),
        ("ytvis21", 40, "airplane", "zebra"),
        ("ovis", 25, "Person", "Vehical"),
        ("coco", 80, "person", "toothbrush"),
        ("lvis", 1203, "aerosol can", "zucchini"),
    ],
)
def test_shipped_dataset_vocabularies(
    metadata_root: str, dataset: str, count: int, first: str, last: str | None
) -> None:
    """Each dataset's names are in its classifier's row order: a name it shares with LVIS has
    (nearly) the same text embedding as that LVIS row, and no other LVIS row is closer."""
    names, clf = classifier_for(dataset, None, 512)
    assert len(names) == clf.shape[0] == count and names[0] == first
    assert last is None or names[-1] == last
    np.testing.assert_allclose(np.linalg.norm(clf, axis=1), 1.0, atol=1e-3)
    lvis_names, lvis = classifier_for("lvis", None, 512)
    row = {n.lower(): i for i, n in enumerate(lvis_names)}
    shared = [(i, row[n.lower()]) for i, n in enumerate(names) if n.lower() in row]
    assert len(shared) >= 0.7 * count
    similarity = clf @ lvis.T
    nearest = np.argmax(similarity, axis=1)
    matched = [nearest[i] == j and similarity[i, j] > 0.95 for i, j in shared]
    # LV-VIS phrases a few parenthesised names differently; "octopus (food)" then lands nearest
    # to "octopus (animal)". Everywhere else the match is exact.
    assert sum(matched) >= len(shared) - (1 if dataset == "lvvis" else 0), dataset
    with pytest.raises(ValueError, match=r"\(num_classes >= 1, 256\)"):
        classifier_for(dataset, None, 256)
