"""The CLIP text transformer: parity with transformers' CLIPTextModel on the same random weights."""

from __future__ import annotations

import pytest
import torch
from zoo_latent.text_encoder import CLIPTextConfig, CLIPTextModel, convert_state_dict

VOCAB = 99


def tiny_config(eos_token_id: int, hidden_act: str = "quick_gelu") -> dict:
    return dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
        bos_token_id=VOCAB - 2,
        eos_token_id=eos_token_id,
        pad_token_id=1,
    )


def make_pair(eos_token_id: int, hidden_act: str = "quick_gelu"):
    from transformers import CLIPTextConfig as HFConfig
    from transformers import CLIPTextModel as HFModel

    torch.manual_seed(0)
    hf_config = tiny_config(eos_token_id, hidden_act)
    ref = HFModel(HFConfig(**hf_config)).eval()
    ours = CLIPTextModel(CLIPTextConfig.from_transformers(hf_config)).eval()
    state = {k: v for k, v in ref.state_dict().items()}  # transformers >= 5 drops the text_model. prefix
    ours.load_state_dict(convert_state_dict(state), strict=True)
    return ref, ours


def token_batch(pad_id: int) -> torch.Tensor:
    """Two prompts of different lengths: bos, words (ids < VOCAB - 2), eos, then padding."""
    g = torch.Generator().manual_seed(1)
    rows = []
    for length in (5, 40):
        words = torch.randint(3, VOCAB - 2, (length,), generator=g).tolist()
        ids = [VOCAB - 2, *words, VOCAB - 1]
        rows.append(ids + [pad_id] * (77 - len(ids)))
    return torch.tensor(rows)


@pytest.mark.parametrize(
    ("eos_token_id", "pad", "act"),
    [(VOCAB - 1, VOCAB - 1, "quick_gelu"), (2, VOCAB - 1, "quick_gelu"), (VOCAB - 1, 1, "gelu")],
    ids=["eos-first-occurrence", "legacy-eos-argmax", "gelu-pad1"],
)
def test_matches_transformers(eos_token_id, pad, act):
    ref, ours = make_pair(eos_token_id, act)
    ids = token_batch(pad)
    with torch.no_grad():
        expected = ref(ids, output_hidden_states=True)
        got = ours(ids)
        assert (got.last_hidden_state - expected.last_hidden_state).abs().max() <= 1e-5
        assert (got.pooled - expected.pooler_output).abs().max() <= 1e-5
        # clip_skip as diffusers' encode_prompt: hidden_states[-(k + 1)] through the final LayerNorm
        for k in (1, 2):
            want = ref.final_layer_norm(expected.hidden_states[-(k + 1)])
            skipped = ours(ids, clip_skip=k)
            assert (skipped.last_hidden_state - want).abs().max() <= 1e-5
            assert not torch.allclose(skipped.last_hidden_state, got.last_hidden_state)
            assert torch.equal(skipped.pooled, got.pooled)


def test_attention_mask_matches_transformers():
    ref, ours = make_pair(VOCAB - 1)
    ids = token_batch(1)
    mask = (torch.arange(77)[None] <= (ids == VOCAB - 1).int().argmax(-1, keepdim=True)).long()
    with torch.no_grad():
        expected = ref(ids, attention_mask=mask)
        got = ours(ids, attention_mask=mask)
    real = mask.bool()
    diff = (got.last_hidden_state - expected.last_hidden_state).abs()[real]
    assert diff.max() <= 1e-5
    assert (got.pooled - expected.pooler_output).abs().max() <= 1e-5


def test_checkpoint_keys_with_prefix_and_position_ids_load():
    ref, ours = make_pair(VOCAB - 1)
    published = {"text_model." + k: v for k, v in ref.state_dict().items()}
    published["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # what SD v1 .bin files carry
    converted = convert_state_dict(published)
    assert set(converted) == set(ours.state_dict())
    assert "text_model.encoder.layers.0.self_attn.q_proj.weight" in converted


def test_clip_skip_out_of_range_and_too_long_input():
    _, ours = make_pair(VOCAB - 1)
    with pytest.raises(ValueError, match="clip_skip must be in 0..3"):
        ours(token_batch(1), clip_skip=4)
    with pytest.raises(ValueError, match="78 tokens do not fit"):
        ours(torch.zeros(1, 78, dtype=torch.long))
