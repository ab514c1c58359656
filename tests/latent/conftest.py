"""Shared fixtures of the latent family's tests."""

from __future__ import annotations

import pytest
import torch
from latent_helpers import TINY_UNET, TINY_VAE, learn_clip_bpe, perturb, write_tokenizer_folder


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory):
    """A tiny SD pipeline with random weights, written by diffusers' own save_pretrained."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("sd")
    vocab, _ = learn_clip_bpe()
    tok_dir = write_tokenizer_folder(root / "tok")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{k: v for k, v in TINY_UNET.items() if not k.startswith("_")})
    vae = AutoencoderKL(**{k: v for k, v in TINY_VAE.items() if not k.startswith("_")})
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=5,
            num_attention_heads=4,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    for i, module in enumerate((unet, vae, text_encoder)):
        perturb(module, seed=i)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(tok_dir)),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    out = root / "pipeline"
    pipe.save_pretrained(out)
    return out, pipe
