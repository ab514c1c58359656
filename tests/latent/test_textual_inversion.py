"""Textual-inversion loading on latent models: the three file formats, multi-vector tokens, unload, several at
once, bad input, and parity with diffusers' load_textual_inversion on the same weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from zoo_latent.model import LatentTextToImageModel
from zoo_latent.textual_inversion import save_learned_embeds, textual_inversion_embeddings

import zoo
from zoo_core.errors import WeightsError

pytest_plugins = ["hubserver"]


@pytest.fixture
def t2i():
    return zoo.load("t2i")


def _vectors(n: int, dim: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _hf_pipeline_from(model: LatentTextToImageModel, tok_dir, pipe):
    """A diffusers StableDiffusionPipeline whose text encoder and tokenizer are ``model``'s (transformers
    classes with its weights); the UNet and VAE are the tiny fixture's (only the text side is compared)."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    c = model.config.text_encoder
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.hidden_size,
            intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads,
            max_position_embeddings=c.max_position_embeddings,
            hidden_act=c.hidden_act,
            layer_norm_eps=c.layer_norm_eps,
            eos_token_id=c.eos_token_id,
            bos_token_id=model.tokenizer.bos_token_id,
            pad_token_id=model.tokenizer.pad_token_id,
        )
    )
    ours = {k.removeprefix("text_model."): v for k, v in model.text_encoder.state_dict().items()}
    missing, unexpected = text_encoder.load_state_dict(ours, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    model.tokenizer.save_pretrained(tok_dir)
    return StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=text_encoder.eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(tok_dir)),
        unet=pipe.unet,
        scheduler=pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def test_our_learned_embeds_give_the_same_text_states_in_diffusers(t2i, pipeline_dir, tmp_path):
    _, tiny = pipeline_dir
    pipe = _hf_pipeline_from(t2i, tmp_path / "tok", tiny)
    one = save_learned_embeds({"<heart>": _vectors(1)}, tmp_path / "one")
    four = save_learned_embeds({"<dots>": _vectors(4, seed=1)}, tmp_path / "four")
    pipe.load_textual_inversion([str(one), str(four)])
    assert t2i.load_textual_inversion([one, four]) == ["<heart>", "<dots>"]
    prompts = [
        "a photo of <heart>",
        "a red <dots> on a blue background",
        "a green circle on a white background",
    ]
    for prompt in prompts:
        with torch.no_grad():
            ours = t2i.encode_prompt([prompt])
            theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        assert torch.equal(
            t2i.tokenizer([prompt]),
            pipe.tokenizer(
                pipe.maybe_convert_prompt(prompt, pipe.tokenizer),
                padding="max_length",
                max_length=16,
                truncation=True,
                return_tensors="pt",
            ).input_ids,
        )
        assert (ours - theirs).abs().max() <= 1e-5


def test_a1111_and_emb_params_files_load_into_ours_like_diffusers(pipeline_dir, tmp_path):
    folder, pipe = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    dim = model.text_encoder.token_embedding.weight.shape[1]
    vectors = _vectors(3, dim, seed=2)
    a1111 = tmp_path / "cat-toy.pt"
    torch.save(
        {
            "string_to_param": {"*": vectors},
            "name": "cat-toy",
            "step": 3000,
            "string_to_token": {"*": torch.tensor([265])},
        },
        a1111,
    )
    emb = tmp_path / "sparkle.safetensors"
    save_file({"emb_params": vectors.flip(0).contiguous()}, emb)
    assert model.load_textual_inversion([a1111, emb]) == ["cat-toy", "sparkle"]
    loaded = textual_inversion_embeddings(model)
    assert torch.equal(loaded["cat-toy"], vectors) and torch.equal(loaded["sparkle"], vectors.flip(0))
    pipe.load_textual_inversion(str(a1111), token="cat-toy")
    pipe.load_textual_inversion(str(emb), token="sparkle")
    for prompt in ("a photo of cat-toy", "sparkle and cat-toy on a table"):
        with torch.no_grad():
            theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
            ours = model.encode_prompt([prompt])
        assert (ours - theirs).abs().max() <= 1e-5
    pipe.unload_textual_inversion()


def test_multi_vector_tokens_expand_and_unload_restores_the_model_bit_for_bit(t2i):
    before = {k: v.clone() for k, v in t2i.state_dict().items()}
    plain = t2i.tokenizer(["a red star on a blue background"])
    t2i.load_textual_inversion({"<a>": _vectors(3)})
    t2i.load_textual_inversion(_vectors(1, seed=5), token="<b>")
    ids = t2i.tokenizer.encode("a <a> and <b>")
    a_ids = [t2i.tokenizer.token_to_id(t) for t in ("<a>", "<a>_1", "<a>_2")]
    assert ids[2:5] == a_ids and t2i.tokenizer.token_to_id("<b>") in ids
    weight = t2i.text_encoder.token_embedding.weight
    assert weight.shape[0] == 566 + 4 and torch.equal(weight[a_ids], _vectors(3))
    assert torch.equal(weight[:566], before["text_encoder.text_model.embeddings.token_embedding.weight"])
    assert t2i.unload_textual_inversion("<a>") == ["<a>"]
    assert list(textual_inversion_embeddings(t2i)) == ["<b>"]
    assert torch.equal(textual_inversion_embeddings(t2i)["<b>"], _vectors(1, seed=5))
    t2i.unload_textual_inversion()
    after = t2i.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert torch.equal(t2i.tokenizer(["a red star on a blue background"]), plain)
    with pytest.raises(KeyError):
        t2i.tokenizer.token_to_id("<a>_1")


def test_folder_with_learned_embeds_loads_and_samples_change(t2i, tmp_path):
    save_learned_embeds({"<x>": _vectors(2) * 3}, tmp_path / "run")
    base = t2i.sample(2, prompt="a <x> on a green background", seed=0, steps=4)
    t2i.load_textual_inversion(tmp_path / "run")
    learned = t2i.sample(2, prompt="a <x> on a green background", seed=0, steps=4)
    other = t2i.sample(2, prompt="a red star on a blue background", seed=0, steps=4)
    t2i.unload_textual_inversion()
    assert (base - learned).abs().max() > 1e-2
    assert torch.equal(other, t2i.sample(2, prompt="a red star on a blue background", seed=0, steps=4))


def test_bad_embeddings_are_refused_and_the_model_left_unchanged(t2i, tmp_path):
    rows = t2i.text_encoder.token_embedding.weight.shape[0]
    with pytest.raises(ValueError, match="'star' is already in the model's vocabulary"):
        t2i.load_textual_inversion({"star": _vectors(1)})
    with pytest.raises(WeightsError, match=r"shape \(2, 64\).*takes 32-dimensional"):
        t2i.load_textual_inversion({"<ok>": _vectors(1), "<wide>": _vectors(2, dim=64)})
    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    with pytest.raises(WeightsError, match="holds no embeddings"):
        t2i.load_textual_inversion(empty)
    with pytest.raises(WeightsError, match="not a textual-inversion embedding I know.*keys: step, other"):
        t2i.load_textual_inversion({"step": 3, "other": "x"})
    code = tmp_path / "code.pt"
    torch.save({"string_to_param": {"*": _vectors(1)}, "f": torch.nn.Linear(2, 2)}, code)
    with pytest.raises(WeightsError, match="needs code to load"):
        t2i.load_textual_inversion(code)
    t2i.load_textual_inversion({"<y>": _vectors(1)})
    with pytest.raises(ValueError, match="already loaded"):
        t2i.load_textual_inversion({"<y>": _vectors(1)})
    with pytest.raises(ValueError, match="no textual-inversion token '<z>' is loaded; loaded: <y>"):
        t2i.unload_textual_inversion("<z>")
    t2i.unload_textual_inversion()
    assert t2i.text_encoder.token_embedding.weight.shape[0] == rows


def test_a_model_saved_with_an_embedding_loaded_reloads_with_it(t2i, tmp_path):
    t2i.load_textual_inversion({"<s>": _vectors(1, seed=3)})
    prompt = ["a red <s> on a blue background"]
    with torch.no_grad():
        expected = t2i.encode_prompt(prompt)
    again = LatentTextToImageModel.from_pretrained(t2i.save_pretrained(tmp_path / "saved"))
    with torch.no_grad():
        assert torch.equal(again.encode_prompt(prompt), expected)


def test_a_hub_repo_of_learned_embeds_loads_by_its_name(t2i, tmp_path, hub_server):
    path = save_learned_embeds({"<hub>": _vectors(2, seed=4)}, tmp_path / "repo")
    hub_server.add_repo("sd-concepts-library/hub-heart", {"learned_embeds.safetensors": path.read_bytes()})
    assert t2i.load_textual_inversion("sd-concepts-library/hub-heart") == ["<hub>"]
    assert torch.equal(textual_inversion_embeddings(t2i)["<hub>"], _vectors(2, seed=4))
    t2i.unload_textual_inversion()
    assert t2i.load_textual_inversion("hf://sd-concepts-library/hub-heart", token="<other>") == ["<other>"]


def test_force_replaces_a_loaded_token_and_shadows_a_word_but_never_an_own_token(t2i):
    before = t2i.text_encoder.token_embedding.weight.detach().clone()
    star = t2i.tokenizer(["a star"])
    t2i.load_textual_inversion({"<y>": _vectors(3)})
    assert t2i.load_textual_inversion({"<y>": _vectors(1, seed=1)}, force=True) == ["<y>"]
    assert torch.equal(textual_inversion_embeddings(t2i)["<y>"], _vectors(1, seed=1))
    with pytest.raises(KeyError):
        t2i.tokenizer.token_to_id("<y>_1")  # the old three-vector token is gone, not merged
    with pytest.raises(ValueError, match="or force=True to make it stand for the word"):
        t2i.load_textual_inversion({"star": _vectors(1)})
    t2i.load_textual_inversion({"star": _vectors(1, seed=2)}, force=True)
    shadow = t2i.tokenizer.token_to_id("star")
    assert t2i.tokenizer.encode("a star")[2] == shadow != star[0, 2]
    weight = t2i.text_encoder.token_embedding.weight
    assert torch.equal(weight[shadow], _vectors(1, seed=2)[0]) and torch.equal(weight[:566], before)
    with pytest.raises(ValueError, match="one of the model's own tokens and cannot be replaced"):
        t2i.load_textual_inversion({"<|endoftext|>": _vectors(1)}, force=True)
    t2i.unload_textual_inversion()
    assert torch.equal(t2i.tokenizer(["a star"]), star)
    assert torch.equal(t2i.text_encoder.token_embedding.weight, before)


@pytest.mark.parametrize("fmt", ["zoo", "diffusers"])
def test_multi_vector_tokens_survive_save_and_reload(t2i, tmp_path, fmt):
    t2i.load_textual_inversion([{"<a>": _vectors(3)}, {"<b>": _vectors(1, seed=1)}])
    prompts = ["a red <a> on a blue background", "<b> and <a>", "a green circle on a white background"]
    with torch.no_grad():
        expected = t2i.encode_prompt(prompts)
    folder = t2i.save_pretrained(tmp_path / fmt, format=fmt)
    again = zoo.load(str(folder))
    assert again.tokenizer.multi_vector == {"<a>": ["<a>", "<a>_1", "<a>_2"]}
    with torch.no_grad():
        assert torch.equal(again.encode_prompt(prompts), expected)
    assert torch.equal(textual_inversion_embeddings(again)["<a>"], _vectors(3))
    again.unload_textual_inversion()  # loaded tokens again: unloading gives the plain base back
    fresh = zoo.load("t2i")
    assert torch.equal(again.text_encoder.token_embedding.weight, fresh.text_encoder.token_embedding.weight)
    assert torch.equal(again.tokenizer(prompts), fresh.tokenizer(prompts))


def test_exported_multi_vector_token_expands_in_diffusers_as_in_ours(t2i, tmp_path):
    from diffusers import StableDiffusionPipeline

    t2i.load_textual_inversion({"<a>": _vectors(4)})
    folder = t2i.save_pretrained(tmp_path / "diffusers", format="diffusers")
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    prompt = "a red <a> on a blue background"
    assert (
        pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
        == "a red <a> <a>_1 <a>_2 <a>_3 on a blue background"
    )
    with torch.no_grad():
        theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        ours = t2i.encode_prompt([prompt])
    assert (ours - theirs).abs().max() <= 1e-5


def test_a_pipeline_diffusers_saved_with_a_multi_vector_token_expands_it_in_ours(pipeline_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    folder, _ = pipeline_dir
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    dim = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    pipe.load_textual_inversion(save_learned_embeds({"<c>": _vectors(2, dim)}, tmp_path / "emb"))
    pipe.save_pretrained(tmp_path / "saved")  # diffusers' own save: only the added tokens carry the rule
    ours = LatentTextToImageModel.from_pretrained(tmp_path / "saved")
    assert ours.tokenizer.multi_vector == {"<c>": ["<c>", "<c>_1"]}
    prompt = "a photo of <c>"
    with torch.no_grad():
        theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        assert (ours.encode_prompt([prompt]) - theirs).abs().max() <= 1e-5
