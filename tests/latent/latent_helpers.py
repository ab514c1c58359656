"""Test helpers for the latent family: a small CLIP-format BPE vocabulary and tiny model configs."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import regex
import torch

CORPUS = """
a photo of a red cube on a blue background. a painting of a green circle, oil on canvas!
an astronaut riding a horse on the moon, highly detailed, 4k, trending on artstation
the quick brown fox jumps over the lazy dog; it's a dog's life, isn't it? they're here and we've gone
photograph of 3 cats and 12 dogs in 1999 -- "sharp focus" (masterpiece) [best quality] {detail}
un café très crème à paris, naïve façade, über straße, 東京 タワー 😀 emoji
a small yellow triangle, a large purple square, a tiny orange star, blurry, low quality, deformed
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, (chr(c) for c in chars), strict=True))


def learn_clip_bpe(
    corpus: str = CORPUS, num_merges: int = 300
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-format vocab (256 bytes, 256 bytes + ``</w>``, merges, start/end tokens) learnt greedily on ``corpus``."""
    byte_map = bytes_to_unicode()
    words = regex.findall(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", corpus.lower())
    counts = collections.Counter(words)
    splits = {}
    for word in counts:
        symbols = [byte_map[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        splits[word] = symbols
    base = list(byte_map.values())
    vocab_list = base + [c + "</w>" for c in base]
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab_list.append(best[0] + best[1])
        for word, symbols in splits.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def write_tokenizer_folder(directory: Path, pad_token: str = "<|endoftext|>", max_length: int = 77) -> Path:
    """A diffusers-style ``tokenizer/`` folder with the learnt vocab."""
    vocab, merges = learn_clip_bpe()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": {
            "__type": "AddedToken",
            "content": "<|startoftext|>",
            "lstrip": False,
            "normalized": True,
            "rstrip": False,
        },
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
        "do_lower_case": True,
        "errors": "replace",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


TINY_UNET = {  # unet/config.json of hf-internal-testing/tiny-stable-diffusion-torch
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.8.0",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [32, 64],
    "center_input_sample": False,
    "cross_attention_dim": 32,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
}
TINY_VAE = {  # the vae of hf-internal-testing/tiny-stable-diffusion-torch, with sample_size made small for tiling
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.8.0",
    "act_fn": "silu",
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
}


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Randomise every parameter (norms included) so a wrong mapping cannot hide behind default init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def make_pipeline(root: Path):
    """A tiny SD pipeline with random weights, written by diffusers' own save_pretrained to ``root/pipeline``."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

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
