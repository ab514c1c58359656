"""LatentTextToImageModel: loads a diffusers StableDiffusionPipeline folder unchanged and reproduces its samples."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from zoo_latent.model import LatentTextToImageModel

import zoo
from zoo_core.errors import WeightsError

PROMPTS = ["a red circle on a blue background", "a small green triangle, highly detailed"]


def test_loads_pipeline_folder_and_matches_diffusers_ddim_cfg(pipeline_dir):
    folder, pipe = pipeline_dir
    model = zoo.load(str(folder))  # model_index.json -> diffusers:StableDiffusionPipeline -> our class
    assert isinstance(model, LatentTextToImageModel)
    assert model.config.schedule.beta_schedule == "scaled_linear" and model.tokenizer is not None
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = pipe(
            PROMPTS,
            negative_prompt=["blurry", ""],
            height=32,
            width=32,
            num_inference_steps=10,
            guidance_scale=7.5,
            latents=latents.clone(),
            output_type="pt",
        ).images
    got = model.sample(
        2,
        prompt=PROMPTS,
        negative_prompt=["blurry", ""],
        sampler="ddim",
        steps=10,
        guidance_scale=7.5,
        height=32,
        width=32,
        x_T=latents,
    )
    assert got.shape == (2, 3, 32, 32)
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_prompt_embeddings_match_diffusers(pipeline_dir):
    folder, pipe = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, negative_prompt="ugly")
        got, guided = model.prepare_conditioning(1, prompt=PROMPTS[0], negative_prompt="ugly")
    assert (got["encoder_hidden_states"] - cond).abs().max() <= 1e-5
    assert (guided.uncond["encoder_hidden_states"] - uncond).abs().max() <= 1e-5
    assert guided.sample_shape == (4, 32, 32)  # unet sample_size 32, default 64x64 images


def test_zoo_format_round_trip_keeps_tokenizer(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    x = model.sample(1, prompt="a red cube", steps=3, seed=0, height=16, width=24)
    assert x.shape == (1, 3, 16, 24)
    model.save_pretrained(tmp_path / "zoo")
    assert (tmp_path / "zoo" / "tokenizer" / "merges.txt").is_file()
    again = LatentTextToImageModel.from_pretrained(tmp_path / "zoo")
    assert torch.equal(again.sample(1, prompt="a red cube", steps=3, seed=0, height=16, width=24), x)


def test_fp16_variant_and_bin_files_load(pipeline_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder, _ = pipeline_dir
    reference = LatentTextToImageModel.from_pretrained(folder).state_dict()
    copy = shutil.copytree(folder, tmp_path / "variant")
    unet = copy / "unet" / "diffusion_pytorch_model.safetensors"
    save_file(
        {k: v.half() for k, v in load_file(unet).items()},
        unet.with_name("diffusion_pytorch_model.fp16.safetensors"),
    )
    unet.unlink()
    vae = copy / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(vae), vae.with_name("diffusion_pytorch_model.bin"))
    vae.unlink()
    model = LatentTextToImageModel.from_pretrained(copy)
    state = model.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values())
    key = "unet.conv_in.weight"
    assert torch.equal(state[key], reference[key].half().float()) and not torch.equal(
        state[key], reference[key]
    )
    assert all(
        torch.equal(state[k], reference[k]) for k in reference if k.startswith(("vae.", "text_encoder."))
    )


def test_missing_component_is_named(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    copy = shutil.copytree(folder, tmp_path / "broken")
    shutil.rmtree(copy / "vae")
    with pytest.raises(WeightsError, match="no 'vae' component"):
        LatentTextToImageModel.from_pretrained(copy)
    shutil.rmtree(copy / "tokenizer")
    index = json.loads((copy / "model_index.json").read_text())
    assert "tokenizer" in index


def test_sizes_must_be_multiples_of_8(pipeline_dir):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    with pytest.raises(
        ValueError,
        match="height must be a positive multiple of 8 pixels, got 30; the nearest valid height is 32",
    ):
        model.sample(1, prompt="x", steps=2, height=30, width=32)
    with pytest.raises(ValueError, match="nearest valid width is 16"):
        model.sample(1, prompt="x", steps=2, height=32, width=19)
    with pytest.raises(ValueError, match="2 entries for 3 images"):
        model.sample(3, prompt=["a", "b"], steps=2, height=16, width=16)


def test_img2img_matches_diffusers(pipeline_dir):
    from diffusers import StableDiffusionImg2ImgPipeline

    folder, pipe = pipeline_dir
    ref = StableDiffusionImg2ImgPipeline(**pipe.components)
    ref.set_progress_bar_config(disable=True)
    model = LatentTextToImageModel.from_pretrained(folder)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))  # in [0, 1] for diffusers
    with torch.no_grad():
        want = ref(
            PROMPTS[0],
            image=image,
            strength=0.6,
            num_inference_steps=10,
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(11),
            output_type="pt",
        ).images
    got = model.img2img(
        image * 2 - 1,
        prompt=PROMPTS[0],
        strength=0.6,
        sampler="ddim",
        steps=10,
        seed=torch.Generator().manual_seed(11),
    )
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_card_loads_a_local_copy_of_the_pipeline(pipeline_dir):
    folder, _ = pipeline_dir
    model = zoo.load("sd15", weights=str(folder))
    assert isinstance(model, LatentTextToImageModel) and model.card.name == "sd15"
    assert model.config.unet.cross_attention_dim == 32  # the pipeline's configs, not the card's fallback
    assert model.default_sampler == "pndm" and model.default_steps == 50


def test_clip_text_conditioner_is_registered_and_gives_the_null_branch(pipeline_dir):
    from zoo_core.registry import get_registry

    folder, pipe = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    cls = get_registry().get("conditioners", "clip-text")
    conditioner = cls(model.tokenizer, model.text_encoder)
    with torch.no_grad():
        _, uncond = pipe.encode_prompt("a cat", "cpu", 2, True)  # negative_prompt None -> ""
        null = conditioner.null(2)["encoder_hidden_states"]
        _, guided = model.prepare_conditioning(2, prompt="a cat")
    assert (null - uncond).abs().max() <= 1e-5
    assert torch.equal(guided.uncond["encoder_hidden_states"], null)


def test_bfloat16_samples_close_to_float32(pipeline_dir):
    folder, _ = pipeline_dir
    full = LatentTextToImageModel.from_pretrained(folder)
    half = LatentTextToImageModel.from_pretrained(folder, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    kwargs = dict(prompt="a red cube", sampler="ddim", steps=4, seed=0, height=16, width=16)
    a, b = full.sample(1, **kwargs), half.sample(1, **kwargs)
    assert b.dtype == torch.bfloat16 and torch.isfinite(b.float()).all()
    assert (a - b.float()).abs().mean() < 0.05


def test_attention_controller_on_the_model_sees_guided_batches(pipeline_dir):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    shapes = []

    def controller(probs, is_cross, layer_name):
        shapes.append((is_cross, tuple(probs.shape)))

    names = model.set_attention_controller(controller)
    model.sample(1, prompt="a red cube", sampler="ddim", steps=2, seed=0, height=16, width=16)
    model.set_attention_controller(None)
    assert len(shapes) == 2 * len(names)  # every layer, every step
    # classifier-free guidance batches [uncond, cond]; cross-attention attends over the 77 text tokens
    assert {s for c, s in shapes if c} == {(2, 8, 16, 77)}
