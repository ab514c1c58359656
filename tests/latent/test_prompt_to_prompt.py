"""Prompt-to-Prompt edits (zoo_latent.prompt_to_prompt) on a tiny random latent model."""

from __future__ import annotations

import pytest
import torch
from latent_helpers import TINY_UNET, TINY_VAE, learn_clip_bpe, perturb, write_tokenizer_folder
from zoo_latent.model import LatentConfig, LatentTextToImageModel
from zoo_latent.prompt_to_prompt import (
    PromptEdit,
    PromptToPromptController,
    align_tokens,
    build_controller,
    replacement_mapper,
    word_tokens,
)
from zoo_latent.text_encoder import CLIPTextConfig
from zoo_latent.tokenizer import CLIPTokenizer
from zoo_latent.unet import UNet2DConditionConfig
from zoo_latent.vae import AutoencoderKLConfig

from zoo_core.errors import ConfigError

SOURCE = "a red circle on a blue background"
TARGET = "a red square on a blue background"
RUN = dict(sampler="ddim", steps=4, height=16, width=16, guidance_scale=3.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    vocab, _ = learn_clip_bpe()
    tokenizer = CLIPTokenizer.from_pretrained(
        write_tokenizer_folder(tmp_path_factory.mktemp("tok"), max_length=16)
    )
    config = LatentConfig(
        unet=UNet2DConditionConfig.from_diffusers(TINY_UNET),
        vae=AutoencoderKLConfig.from_diffusers(TINY_VAE),
        text_encoder=CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            eos_token_id=vocab["<|endoftext|>"],
        ),
    )
    torch.manual_seed(0)
    m = LatentTextToImageModel(config)
    perturb(m, seed=1)
    m.tokenizer = tokenizer
    return m.eval()


def test_identical_prompts_with_full_replacement_give_the_source_sample(model):
    edit = {"type": "replace", "source": SOURCE, "target": SOURCE, "cross_steps": 1.0, "self_steps": 1.0}
    out = model.sample(2, edit=edit, seed=[3, 4], **RUN)
    assert out.shape == (4, 3, 16, 16)
    assert (out[2:] - out[:2]).abs().max() <= 1e-6
    # the source half is the plain sample of the source prompt from the same seeds
    plain = model.sample(2, prompt=SOURCE, seed=[3, 4], **RUN)
    assert (out[:2] - plain).abs().max() <= 1e-4


def test_stochastic_sampler_pairs_share_their_noise(model):
    edit = {"type": "replace", "source": SOURCE, "target": SOURCE, "cross_steps": 1.0, "self_steps": 1.0}
    out = model.sample(1, edit=edit, seed=7, **{**RUN, "sampler": "euler-a"})
    assert (out[1] - out[0]).abs().max() <= 1e-6


def test_word_swap_edits_the_target_and_differs_from_no_edit(model):
    edit = {"type": "replace", "source": SOURCE, "target": TARGET, "cross_steps": 1.0, "self_steps": 1.0}
    out = model.sample(1, edit=edit, seed=0, **RUN)
    plain_target = model.sample(1, prompt=TARGET, seed=0, **RUN)
    plain_source = model.sample(1, prompt=SOURCE, seed=0, **RUN)
    assert (out[0] - plain_source[0]).abs().max() <= 1e-4  # the source is untouched
    assert (out[1] - plain_target[0]).abs().max() > 1e-3  # the edit changed the target's sample
    assert (out[1] - out[0]).abs().max() > 1e-4  # ... but it is not the source's either


@pytest.mark.parametrize("self_max_tokens", [256, 8])
def test_controller_edits_exactly_the_scheduled_layers_steps_and_rows(model, monkeypatch, self_max_tokens):
    calls = []
    original = PromptToPromptController.__call__

    def spy(self, probs, is_cross, layer_name):
        out = original(self, probs, is_cross, layer_name)
        calls.append((self.t, is_cross, layer_name, probs, probs if out is None else out))
        return out

    monkeypatch.setattr(PromptToPromptController, "__call__", spy)
    edit = {
        "type": "replace",
        "source": SOURCE,
        "target": TARGET,
        "cross_steps": 0.5,
        "self_steps": 0.3,
        "self_max_tokens": self_max_tokens,
    }
    n = 2
    model.sample(n, edit=edit, seed=0, **{**RUN, "steps": 10})
    timesteps = sorted({c[0] for c in calls}, reverse=True)
    assert timesteps == [901.0 - 100 * i for i in range(10)]  # leading spacing, steps_offset 1
    layers = {c[2] for c in calls}
    assert len(calls) == 10 * len(layers)
    edited = set()
    for t, is_cross, name, probs, out in calls:
        scheduled = t >= (500 if is_cross else 700)
        assert (probs is not None) == scheduled, (t, name)  # the fused kernel runs where nothing is edited
        if probs is None:
            continue
        untouched = slice(0, 3 * n)  # unconditional rows and the conditional source rows
        assert torch.equal(out[untouched], probs[untouched]), (t, name)
        if is_cross:
            assert torch.allclose(out[3 * n :], probs[2 * n : 3 * n]), (t, name)  # same token counts
            assert not torch.allclose(out[3 * n :], probs[3 * n :])
            edited.add((t, "cross"))
        elif probs.shape[2] <= self_max_tokens:
            assert torch.equal(out[3 * n :], probs[2 * n : 3 * n]), (t, name)
            edited.add((t, "self"))
        else:
            assert torch.equal(out, probs)
    cross = {(t, "cross") for t in (901.0, 801.0, 701.0, 601.0, 501.0)}
    self_ = {(t, "self") for t in (901.0, 801.0, 701.0)} if self_max_tokens == 256 else set()
    assert edited == cross | self_


def test_reweight_by_one_is_a_no_op(model):
    common = {"cross_steps": 1.0, "self_steps": 0.5}
    reweighted = model.sample(
        1, edit={"type": "reweight", "source": SOURCE, "weights": {"circle": 1.0}, **common}, seed=1, **RUN
    )
    assert (reweighted[1] - reweighted[0]).abs().max() <= 1e-6
    swap = {"type": "replace", "source": SOURCE, "target": TARGET, **common}
    plain_swap = model.sample(1, edit=swap, seed=1, **RUN)
    weighted_swap = model.sample(1, edit={**swap, "weights": {"square": 1.0}}, seed=1, **RUN)
    assert torch.equal(plain_swap, weighted_swap)
    stronger = model.sample(
        1, edit={"type": "reweight", "source": SOURCE, "weights": {"circle": 4.0}, **common}, seed=1, **RUN
    )
    assert (stronger[1] - stronger[0]).abs().max() > 1e-3


def test_cross_attention_maps_follow_the_edit_type(model):
    tokenizer = model.tokenizer
    n, heads, queries, length = 1, 2, 3, tokenizer.max_length
    probs = torch.rand(2 * n, heads, queries, length, generator=torch.Generator().manual_seed(0))
    src, tgt = probs[0], probs[1]

    swap = build_controller(PromptEdit(type="replace", source=SOURCE, target=TARGET), tokenizer, n, 1000)
    swap.set_timestep(999)
    out = swap(probs, True, "x.attn2")
    assert torch.equal(out[0], src) and torch.allclose(out[1], src)  # same token counts: the source maps

    refine = build_controller(
        PromptEdit(type="refine", source="a circle on a blue background", target=SOURCE), tokenizer, n, 1000
    )
    refine.set_timestep(999)
    out = refine(probs, True, "x.attn2")
    (red,) = dict(word_tokens(tokenizer, SOURCE))["red"]
    new = out[1]
    assert torch.equal(new[..., red], tgt[..., red])  # the added word keeps its own map
    assert torch.equal(new[..., :red], src[..., :red])  # "<start> a" from the source
    assert torch.equal(new[..., red + 1 :], src[..., red : length - 1])  # the rest, shifted by one token

    weights = build_controller(
        PromptEdit(type="reweight", source=SOURCE, weights={"circle": 2.5}), tokenizer, n, 1000
    )
    weights.set_timestep(999)
    out = weights(probs, True, "x.attn2")
    (circle,) = dict(word_tokens(tokenizer, SOURCE))["circle"]
    factor = torch.ones(length)
    factor[circle] = 2.5
    assert torch.allclose(out[1], src * factor)
    weights.set_timestep(0)  # outside cross_steps nothing is edited
    assert not weights.wants_probs(True, "x.attn2")


def test_replacement_mapper_spreads_a_word_of_another_token_count():
    source = [("a", [1]), ("cat", [2]), ("sat", [3])]
    target = [("a", [1]), ("dinosaur", [2, 3]), ("sat", [4])]
    mapper = replacement_mapper(source, target, 8)
    assert mapper[0, 0] == 1 and mapper[1, 1] == 1
    assert mapper[2, 2] == mapper[2, 3] == 0.5
    assert mapper[3, 4] == 1
    assert mapper[4, 5] == 1 and mapper[5, 6] == 1 and mapper[6, 7] == 1  # end token and padding in order
    assert torch.equal(mapper.sum(0), torch.tensor([1.0, 1, 0.5, 0.5, 1, 1, 1, 1]))


def test_token_alignment_marks_inserted_tokens():
    assert align_tokens([0, 5, 6, 1], [0, 5, 9, 6, 1]) == [0, 1, -1, 2, 3]
    assert align_tokens([0, 5, 6, 1], [0, 7, 6, 1]) == [0, -1, 2, 3]  # a swapped token is not mapped
    assert align_tokens([0, 5, 6, 7, 1], [0, 5, 7, 1]) == [0, 1, 3, 4]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"type": "swap", "source": SOURCE, "target": TARGET}, "type"),
        ({"type": "replace", "source": SOURCE, "target": TARGET, "cross_steps": 1.5}, "cross_steps"),
        ({"type": "replace", "source": SOURCE}, "needs the edited prompt"),
        ({"type": "replace", "source": SOURCE, "target": "a square"}, "same word count|one for one"),
        ({"type": "reweight", "source": SOURCE}, "needs `weights`"),
        ({"type": "reweight", "source": SOURCE, "weights": {"triangle": 2}}, "'triangle' is not in"),
        ({"type": "reweight", "source": SOURCE, "target": TARGET, "weights": {"red": 2}}, "keeps the source"),
        ({"type": "refine", "source": SOURCE, "target": TARGET, "crossteps": 0.5}, "crossteps"),
        ({"type": "refine", "source": SOURCE, "target": " ".join(["red"] * 20)}, "must fit"),
        ("replace circle", "mapping"),
    ],
)
def test_bad_edits_error_clearly(model, edit, message):
    with pytest.raises(ConfigError, match=message):
        model.sample(1, edit=edit, **RUN)


def test_edit_refuses_its_own_prompt_arguments(model):
    edit = {"type": "replace", "source": SOURCE, "target": TARGET}
    with pytest.raises(ValueError, match="prompt="):
        model.sample(1, edit=edit, prompt="a cat", **RUN)
    with pytest.raises(ValueError, match="x_T="):
        model.sample(1, edit=edit, x_T=torch.zeros(2, 4, 8, 8), **RUN)


def test_edit_images_do_not_depend_on_the_batch_size_and_stream(model):
    edit = {"type": "replace", "source": SOURCE, "target": TARGET}
    whole = model.sample(3, edit=edit, seed=5, batch_size=3, **RUN)
    assert whole.shape == (6, 3, 16, 16)
    # pair i is seeded 5 + i: the one-call edit of those seeds, the source half the plain sample of each seed
    torch.testing.assert_close(model.sample(3, edit=edit, seed=[5, 6, 7], **RUN), whole, rtol=0, atol=1e-5)
    assert (whole[3:] - whole[:3]).abs().max() > 1e-3  # the edit changed the targets
    for batch_size in (1, 2):
        split = model.sample(3, edit=edit, seed=5, batch_size=batch_size, **RUN)
        torch.testing.assert_close(split, whole, rtol=0, atol=1e-5)
    batches = list(model.sample_iter(3, batch_size=2, edit=edit, seed=5, **RUN))
    assert [tuple(b.shape) for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    streamed = torch.cat([batches[0][:2], batches[1][:1], batches[0][2:], batches[1][1:]])
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)
    arrays = model.sample(3, edit=edit, seed=5, batch_size=2, output="numpy", **RUN)
    assert arrays.shape == (6, 16, 16, 3) and arrays.dtype.name == "uint8"


def test_zoo_sample_refuses_an_edit_before_writing_anything(tmp_path, capsys):
    """An edit gives two images per seed; the CLI writes one per seed, so it says so before any sampling."""
    import json

    from zoo_core.cli import main

    edit = json.dumps({"type": "replace", "source": SOURCE, "target": TARGET})
    code = main(["sample", "t2i", "-n", "2", "--out-dir", str(tmp_path / "d"), "--threads", "1", "--quiet",
                 "--set", f"edit={edit}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("zoo: error:") and "2 images per seed" in err[-1]
    assert "batch_size=B" in err[-1] and not (tmp_path / "d").exists()
