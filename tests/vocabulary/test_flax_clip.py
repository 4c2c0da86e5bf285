"""The Flax CLIP text tower against transformers' PyTorch one, on tiny random CLIPs with the
text layouts of ViT-B/32 (width 512, 8 heads, projection 512, legacy eos id) and ViT-L/14
(width 768, 12 heads, projection 768), two layers each, saved with save_pretrained."""

from __future__ import annotations

import numpy as np
import pytest

from ov2seg_jax.vocabulary import DEFAULT_TEMPLATES, build_text_classifier
from ov2seg_jax.vocabulary.clip_text import FlaxClipTextEncoder
from tests.inference.conftest import write_tiny_clip

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LAYOUTS = {
    # OpenAI's configs carry the legacy eos_token_id 2 (the end token is found as the largest id).
    "vit_b32": dict(
        hidden_size=512,
        intermediate_size=2048,
        num_attention_heads=8,
        projection_dim=512,
        legacy_eos=True,
    ),
    "vit_l14": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_attention_heads=12,
        projection_dim=768,
        legacy_eos=False,
    ),
}
PROMPTS = ["a photo of a cat.", "a dog", "an aerosol can on the left of a skate board."]


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def clip_dir(request, tmp_path_factory):
    """A full CLIPModel (text layout of the parameter, a two-layer tiny vision tower)."""
    layout = dict(LAYOUTS[request.param])
    legacy = layout.pop("legacy_eos")
    root = tmp_path_factory.mktemp(request.param)
    text_dir = write_tiny_clip(str(root / "text"), projection_dim=8)  # the char tokenizer
    tokenizer = transformers.AutoTokenizer.from_pretrained(text_dir)
    projection = layout.pop("projection_dim")
    text_config = dict(
        vocab_size=tokenizer.vocab_size,
        num_hidden_layers=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=2 if legacy else tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **layout,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=16,
    )
    config = transformers.CLIPConfig(
        text_config=text_config, vision_config=vision, projection_dim=projection
    )
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    out = root / "clip"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out), model, tokenizer


def test_flax_tower_equals_the_pytorch_tower(clip_dir):
    directory, model, tokenizer = clip_dir
    flax_encoder = FlaxClipTextEncoder(directory)
    batch = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model.get_text_features(**batch)
        want = (want.pooler_output if hasattr(want, "pooler_output") else want).numpy()
    ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
    got = np.asarray(flax_encoder._apply(flax_encoder.params, ids, mask))
    assert got.shape == want.shape == (3, model.config.projection_dim)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(want).max() > 0.05  # not a comparison of near-zeros
    # The normalised embeddings of the encoder (its own padding) match as well.
    unit = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(flax_encoder.encode(PROMPTS, batch_size=2), unit, atol=1e-5)


def test_same_classifier_through_the_prompt_ensemble(clip_dir, tmp_path):
    directory, _, _ = clip_dir
    names = ["cat", "skate_board", "aerosol can"]
    flax_clf = build_text_classifier(names, directory, DEFAULT_TEMPLATES, cache_dir=tmp_path)
    torch_clf = build_text_classifier(
        names, directory, DEFAULT_TEMPLATES, use_cache=False, encoder="torch"
    )
    assert flax_clf.shape == torch_clf.shape == (3, len(flax_clf[0]))
    np.testing.assert_allclose(flax_clf, torch_clf, atol=1e-5, rtol=0)
    # One cache entry, under the key the PyTorch encoder would use too.
    (cached,) = tmp_path.glob("*.npy")
    assert np.load(cached).tobytes() == flax_clf.tobytes()
    again = build_text_classifier(
        names, directory, DEFAULT_TEMPLATES, cache_dir=tmp_path, encoder="torch"
    )
    assert again.tobytes() == flax_clf.tobytes()


def test_a_hub_id_is_read_from_the_hub_cache(tmp_path, monkeypatch):
    """Offline, a hub id resolves to its snapshot in the hub cache (the layout huggingface_hub
    writes: models--ORG--NAME/snapshots/REV + refs/main)."""
    import shutil

    from huggingface_hub import constants

    local = write_tiny_clip(str(tmp_path / "tiny"), projection_dim=16)
    repo = tmp_path / "hub" / "models--acme--tiny-clip"
    shutil.copytree(local, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    from_hub = FlaxClipTextEncoder("acme/tiny-clip").encode(PROMPTS)
    np.testing.assert_array_equal(from_hub, FlaxClipTextEncoder(local).encode(PROMPTS))
    with pytest.raises(OSError, match="acme/not-cached"):
        FlaxClipTextEncoder("acme/not-cached")
