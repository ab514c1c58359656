"""Full-size Stable Diffusion v1.5: our UNet, VAE and text encoder have the published parameter names and shapes.

The configs are those of stable-diffusion-v1-5/stable-diffusion-v1-5 (unet/, vae/, text_encoder/ config.json);
the references are diffusers / transformers models built from them on the meta device (no weights, no download).
"""

from __future__ import annotations

import torch
from zoo_latent.text_encoder import CLIPTextConfig, CLIPTextModel
from zoo_latent.unet import UNet2DConditionConfig, UNet2DConditionModel
from zoo_latent.vae import AutoencoderKL, AutoencoderKLConfig

SD15_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.17.0.dev0",
    "act_fn": "silu",
    "addition_embed_type": None,
    "addition_embed_type_num_heads": 64,
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 768,
    "cross_attention_norm": None,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": None,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 64,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": False,
}
SD15_VAE = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_TEXT_ENCODER = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "torch_dtype": "float32",
    "transformers_version": "4.37.2",
    "vocab_size": 49408,
}


def shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_sd15_unet_keys_and_shapes():
    from diffusers import UNet2DConditionModel as Ref

    with torch.device("meta"):
        ref = Ref(**{k: v for k, v in SD15_UNET.items() if not k.startswith("_")})
        ours = UNet2DConditionModel(UNet2DConditionConfig.from_diffusers(SD15_UNET))
    expected = shapes(ref)
    assert len(expected) == 686
    assert shapes(ours) == expected
    assert sum(p.numel() for p in ours.parameters()) == 859_520_964  # SD v1's 860M UNet


def test_sd15_vae_keys_and_shapes():
    from diffusers import AutoencoderKL as Ref

    with torch.device("meta"):
        ref = Ref(**{k: v for k, v in SD15_VAE.items() if not k.startswith("_")})
        ours = AutoencoderKL(AutoencoderKLConfig.from_diffusers(SD15_VAE))
    assert shapes(ours) == shapes(ref)
    assert ours.downscale == 8 and ours.config.scaling_factor == 0.18215


def test_sd15_text_encoder_keys_and_shapes():
    from transformers import CLIPTextConfig as RefConfig
    from transformers import CLIPTextModel as Ref

    with torch.device("meta"):
        ref = Ref(RefConfig(**SD15_TEXT_ENCODER))
        ours = CLIPTextModel(CLIPTextConfig.from_transformers(SD15_TEXT_ENCODER))
    # published text_encoder/ files keep transformers 4's "text_model." prefix, which transformers 5 strips on load
    assert shapes(ours) == shapes(ref, prefix="text_model.")
    assert ours.config.eos_token_id == 2  # SD v1's legacy config: pooled output at the largest token id
