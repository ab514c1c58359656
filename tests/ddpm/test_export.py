"""Export to diffusers: the embedded ddpm model as a DDPMPipeline folder that DDPMPipeline and DDIMPipeline load."""

from __future__ import annotations

import json

import pytest
import torch
from zoo_ddpm.model import DDPMModel

import zoo

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def ddpm():
    return zoo.load("ddpm")


@pytest.fixture(scope="module")
def exported(ddpm, tmp_path_factory):
    return ddpm.save_pretrained(tmp_path_factory.mktemp("export") / "ddpm-diffusers", format="diffusers")


def _images(pipe, **kwargs) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images
    return torch.from_numpy(out).permute(0, 3, 1, 2)  # [B, H, W, C] in [0, 1] -> [B, C, H, W]


def test_layout_and_scheduler_config(ddpm, exported):
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == [
        "diffusers",
        "DDPMScheduler",
    ]
    scheduler = json.loads((exported / "scheduler/scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDPMScheduler"
    assert (scheduler["beta_start"], scheduler["beta_end"], scheduler["num_train_timesteps"]) == (
        1e-4,
        0.02,
        1000,
    )
    assert scheduler["variance_type"] == ddpm.schedule.variance_type and scheduler["clip_sample"] is True
    assert (exported / "unet/diffusion_pytorch_model.safetensors").is_file()


def test_ddpm_pipeline_gives_the_same_images_from_the_same_generator(ddpm, exported):
    from diffusers import DDPMPipeline

    want = _images(DDPMPipeline.from_pretrained(exported), num_inference_steps=20)
    got = ddpm.sample(2, sampler="ddpm", steps=20, seed=torch.Generator().manual_seed(0))
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_ddim_pipeline_loads_the_same_folder(ddpm, exported):
    from diffusers import DDIMPipeline

    pipe = DDIMPipeline.from_pretrained(exported)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # converted from the DDPMScheduler config
    want = _images(pipe, num_inference_steps=20, eta=0.0)
    x_T = torch.randn(
        2, *ddpm.sample_shape, generator=torch.Generator().manual_seed(0)
    )  # diffusers' first draw
    got = ddpm.sample(2, sampler="ddim", steps=20, eta=0.0, x_T=x_T)
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_round_trip_is_bit_exact(ddpm, exported):
    again = zoo.load(str(exported))
    assert isinstance(again, DDPMModel) and again.config == ddpm.config
    assert (again.default_sampler, again.default_steps) == ("ddpm", 1000)  # from the card beside the pipeline
    ours, theirs = ddpm.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(
        again.sample(2, sampler="ddim", steps=5, seed=1), ddpm.sample(2, sampler="ddim", steps=5, seed=1)
    )


def test_fp16_variant(ddpm, tmp_path):
    from diffusers import UNet2DModel

    out = ddpm.save_pretrained(tmp_path / "fp16", format="diffusers", variant="fp16")
    assert sorted(p.name for p in (out / "unet").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.fp16.safetensors",
    ]
    unet = UNet2DModel.from_pretrained(out / "unet", variant="fp16", torch_dtype=torch.float16)
    assert unet.dtype == torch.float16
    assert torch.equal(unet.conv_in.weight, ddpm.unet.conv_in.weight.half())
    back = zoo.load(str(out))  # our loader reads the variant files when they are the only ones
    assert back.dtype == torch.float32
    assert torch.equal(back.unet.conv_in.weight, ddpm.unet.conv_in.weight.half().float())

