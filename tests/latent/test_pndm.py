"""The pndm (PLMS) sampler: parity with diffusers' PNDMScheduler (skip_prk_steps), SD's default scheduler."""

from __future__ import annotations

import pytest
import torch
from test_pipeline import PROMPTS
from zoo_latent.model import LatentTextToImageModel

import zoo
from zoo_core.schedule import NoiseSchedule

SD_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


class Toy:
    """A deterministic nonlinear denoiser of a [B, 2, 4, 4] x_t."""

    kind = "diffusion"
    device = torch.device("cpu")
    dtype = torch.float32
    sample_shape = (2, 4, 4)

    def __init__(self, prediction_type: str) -> None:
        self.prediction_type = prediction_type
        self.schedule = NoiseSchedule.parse(SD_SCHEDULE)
        self.weight = torch.randn(32, 32, generator=torch.Generator().manual_seed(0)) / 32**0.5

    def predict(self, x_t, t, cond=None, generator=None):
        flat = x_t.reshape(x_t.shape[0], -1)
        out = torch.tanh(flat @ self.weight) * (1 + t[:, None].float() / 1000) + 0.1 * flat
        return out.reshape(x_t.shape)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [1, 2, 3, 7])
def test_matches_diffusers_pndm_scheduler(prediction_type, steps):
    from diffusers import PNDMScheduler

    model = Toy(prediction_type)
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    scheduler = PNDMScheduler(**SD_SCHEDULE, skip_prk_steps=True, prediction_type=prediction_type)
    scheduler.set_timesteps(steps)
    x = x_T.clone()
    calls = 0
    for t in scheduler.timesteps:
        out = model.predict(x, t.expand(2))
        x = scheduler.step(out, t, x).prev_sample
        calls += 1
    got = zoo.get_sampler("pndm")(model, (2, 2, 4, 4), steps=steps, x_T=x_T)
    assert calls == steps + (steps > 1)
    assert (got - x).abs().max() <= 1e-5


def test_stable_diffusion_with_pndm_matches_diffusers(pipeline_dir):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    folder, pipe = pipeline_dir
    ref = StableDiffusionPipeline(
        **{**pipe.components, "scheduler": PNDMScheduler(**SD_SCHEDULE, skip_prk_steps=True)}
    )
    ref.set_progress_bar_config(disable=True)
    model = LatentTextToImageModel.from_pretrained(folder)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = ref(
            PROMPTS[0], height=32, width=32, num_inference_steps=8, latents=latents.clone(), output_type="pt"
        ).images
    got = model.sample(1, prompt=PROMPTS[0], sampler="pndm", steps=8, height=32, width=32, x_T=latents)
    assert ((got + 1) / 2 - want).abs().max() <= 1e-4


def test_clip_sample_is_refused_by_name():
    with pytest.raises(zoo.SamplerError, match="cannot clip x0"):
        zoo.get_sampler("pndm")(Toy("epsilon"), (1, 2, 4, 4), steps=3, clip_sample=True)
