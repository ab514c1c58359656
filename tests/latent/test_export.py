"""Export to diffusers: the embedded t2i model as a StableDiffusionPipeline folder diffusers loads unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from zoo_latent.model import LatentTextToImageModel

import zoo
from zoo_core.errors import WeightsError
from zoo_core.export import ExportError

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def t2i():
    return zoo.load("t2i")


@pytest.fixture(scope="module")
def exported(t2i, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "t2i-diffusers"
    t2i.save_pretrained(out, format="diffusers")
    return out


def _pipe(folder, **kwargs):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_layout_is_a_stable_diffusion_pipeline(exported):
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]  # the card's default, dpm++2m
    for path in (
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
    ):
        assert (exported / path).is_file(), path
    assert not list(exported.rglob("*.bin")) and not list(exported.rglob("*.fp16.*"))


def test_diffusers_pipeline_gives_the_same_images_from_the_same_latents(t2i, exported):
    pipe = _pipe(exported)
    assert type(pipe.text_encoder).__name__ == "CLIPTextModel"  # transformers' own class
    h, w = t2i.default_size
    latents = torch.randn(2, *t2i.sample_shape, generator=torch.Generator().manual_seed(5))
    prompts = [PROMPT, "a green triangle on a yellow background"]
    with torch.no_grad():
        want = pipe(
            prompts,
            negative_prompt=["", "a red triangle"],
            num_inference_steps=20,
            guidance_scale=3.0,
            latents=latents.clone(),
            height=h,
            width=w,
            output_type="pt",
        ).images
    got = t2i.sample(
        2, prompt=prompts, negative_prompt=["", "a red triangle"], x_T=latents
    )  # dpm++2m, 20, 3.0
    assert got.shape == want.shape == (2, 3, h, w)
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_round_trip_zoo_diffusers_zoo_is_bit_exact(t2i, exported):
    again = zoo.load(str(exported))
    assert isinstance(again, LatentTextToImageModel)
    assert again.config == t2i.config  # guidance_scale and the schedule's zoo-only fields included
    assert (again.default_sampler, again.default_steps) == (t2i.default_sampler, t2i.default_steps)
    ours, theirs = t2i.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(again.tokenizer([PROMPT]), t2i.tokenizer([PROMPT]))
    assert torch.equal(again.sample(1, prompt=PROMPT, seed=3), t2i.sample(1, prompt=PROMPT, seed=3))


def test_fp16_variant_uses_diffusers_file_names(t2i, tmp_path):
    out = t2i.save_pretrained(tmp_path / "fp16", format="diffusers", variant="fp16")
    assert (out / "unet/diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (out / "text_encoder/model.fp16.safetensors").is_file()
    assert not (out / "unet/diffusion_pytorch_model.safetensors").exists()
    pipe = _pipe(out, variant="fp16", torch_dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16 and pipe.text_encoder.dtype == torch.float16
    key = "conv_in.weight"
    assert torch.equal(pipe.unet.state_dict()[key], t2i.unet.state_dict()[key].half())
    back = zoo.load(str(out))  # our loader reads the variant files when they are the only ones
    assert torch.equal(back.unet.conv_in.weight, t2i.unet.conv_in.weight.half().float())


def test_pipeline_folder_model_exports_its_pndm_scheduler(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)  # no card: the class default, pndm 50
    out = model.save_pretrained(tmp_path / "sd", format="diffusers")
    pipe = _pipe(out)
    assert type(pipe.scheduler).__name__ == "PNDMScheduler" and pipe.scheduler.config.skip_prk_steps
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = pipe(
            PROMPT,
            num_inference_steps=10,
            guidance_scale=7.5,
            latents=latents.clone(),
            height=32,
            width=32,
            output_type="pt",
        ).images
    got = model.sample(1, prompt=PROMPT, steps=10, x_T=latents, height=32, width=32)
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_bad_export_requests_are_clear_errors(t2i, tmp_path):
    with pytest.raises(ExportError, match="no official equivalent.*exported as: zoo, diffusers"):
        t2i.save_pretrained(tmp_path / "x", format="official")
    with pytest.raises(ExportError, match="Unknown export format 'onnx'"):
        t2i.save_pretrained(tmp_path / "x", format="onnx")
    with pytest.raises(ExportError, match="Unknown variant 'fp8'"):
        t2i.save_pretrained(tmp_path / "x", format="diffusers", variant="fp8")
    with pytest.raises(ExportError, match="use format='diffusers'"):
        t2i.save_pretrained(tmp_path / "x", variant="fp16")
    bare = LatentTextToImageModel(t2i.config)
    with pytest.raises(WeightsError, match="no tokenizer"):
        bare.save_pretrained(tmp_path / "y", format="diffusers")
