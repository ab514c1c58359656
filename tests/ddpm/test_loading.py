"""DDPMModel reads the zoo format, diffusers' flat layout (google/ddpm-cifar10-32) and its pipeline layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from ddpm_helpers import CIFAR_SMALL, diffusers_unet
from zoo_ddpm.model import DDPMModel

import zoo
from zoo_core.errors import WeightsError
from zoo_core.weights import save_safetensors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hubserver helper
pytest_plugins = ["hubserver"]

SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "clip_sample": True,
    "variance_type": "fixed_large",
}


@pytest.fixture(scope="module")
def reference():
    return diffusers_unet(CIFAR_SMALL, seed=5)


@pytest.fixture(scope="module")
def x_t():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))


def _flat(reference, directory, safe: bool = True):
    from diffusers import DDPMScheduler

    reference.save_pretrained(directory, safe_serialization=safe)
    DDPMScheduler(**SCHEDULER).save_pretrained(directory)
    return directory


def _assert_same_as_reference(model, reference, x_t):
    assert isinstance(model, DDPMModel) and not model.training
    t = torch.tensor([3, 900])
    with torch.no_grad():
        expected = reference(x_t, t).sample
        assert (model.predict(x_t, t) - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_flat_diffusers_folder_loads_with_its_schedule(reference, x_t, tmp_path, safe):
    directory = _flat(reference, tmp_path / "ddpm-cifar10-32", safe)
    assert (directory / ("diffusion_pytorch_model." + ("safetensors" if safe else "bin"))).exists()
    for model in (zoo.load_pretrained(directory), DDPMModel.from_pretrained(directory)):
        _assert_same_as_reference(model, reference, x_t)
        assert model.schedule.clip_sample and model.schedule.variance_type == "fixed_large"
        assert model.schedule.num_train_timesteps == 1000 and model.prediction_type == "epsilon"
        assert model.sample_shape == (3, 16, 16)
        assert model.default_sampler == "ddpm" and model.default_steps == 1000


@pytest.mark.parametrize("pipeline", ["DDPMPipeline", "DDIMPipeline"])
def test_pipeline_folder_loads(reference, x_t, tmp_path, pipeline):
    import diffusers

    scheduler_cls = diffusers.DDPMScheduler if pipeline == "DDPMPipeline" else diffusers.DDIMScheduler
    scheduler = scheduler_cls(
        **{k: v for k, v in SCHEDULER.items() if k != "variance_type"}, prediction_type="sample"
    )
    getattr(diffusers, pipeline)(unet=reference, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    assert json.loads((tmp_path / "pipe" / "model_index.json").read_text())["_class_name"] == pipeline
    for model in (zoo.load(str(tmp_path / "pipe")), DDPMModel.from_pretrained(tmp_path / "pipe")):
        _assert_same_as_reference(model, reference, x_t)
        assert model.prediction_type == "sample"  # read from the scheduler config
        assert model.schedule.clip_sample


def test_legacy_attention_names_in_a_bin_file_load(reference, x_t, tmp_path):
    """Early diffusers releases (the google/ddpm-* uploads) named attention weights query/key/value/proj_attn."""
    directory = _flat(reference, tmp_path / "legacy", safe=False)
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for key, value in reference.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value
    assert any(".proj_attn." in k for k in state)
    torch.save(state, directory / "diffusion_pytorch_model.bin")
    _assert_same_as_reference(DDPMModel.from_pretrained(directory), reference, x_t)


def test_save_pretrained_round_trip_keeps_weights_config_and_schedule(reference, tmp_path, x_t):
    model = DDPMModel.from_pretrained(_flat(reference, tmp_path / "flat"))
    out = model.save_pretrained(tmp_path / "ours")
    saved = json.loads((out / "config.json").read_text())
    assert saved["_zoo_architecture"] == "ddpm.unet"
    assert saved["schedule"]["variance_type"] == "fixed_large" and saved["unet"]["downsample_padding"] == 0
    for again in (DDPMModel.from_pretrained(out), zoo.load(str(out))):
        assert again.config == model.config
        for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
            assert k == k2 and torch.equal(a, b)
        _assert_same_as_reference(again, reference, x_t)


def test_missing_keys_raise_weights_error_naming_them(reference, tmp_path):
    directory = _flat(reference, tmp_path / "broken")
    state = {k: v for k, v in reference.state_dict().items() if "mid_block.attentions" not in k}
    save_safetensors(state, directory / "diffusion_pytorch_model.safetensors")
    with pytest.raises(WeightsError, match=r"missing keys: unet\.mid_block\.attentions\.0\.group_norm\.bias"):
        DDPMModel.from_pretrained(directory)


def test_a_diffusers_folder_of_another_class_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", "in_channels": 3}))
    with pytest.raises(Exception, match="AutoencoderKL, not a UNet2DModel"):
        DDPMModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 3, 32, 32), r"expects images of shape \[B, 3, 16, 16\].*got \[2, 3, 32, 32\]"),
        ((2, 1, 16, 16), r"3 channels.*got \[2, 1, 16, 16\]"),
        ((3, 16, 16), r"got \[3, 16, 16\]"),
    ],
)
def test_wrong_input_shape_is_a_clear_error(shape, message):
    model = DDPMModel({"unet": CIFAR_SMALL})
    with pytest.raises(ValueError, match=message):
        model.predict(torch.zeros(shape), torch.tensor([1] * shape[0]))


def test_sampling_runs_through_the_denoiser_protocol_and_is_seeded(reference, tmp_path):
    model = DDPMModel.from_pretrained(_flat(reference, tmp_path / "flat"))
    a = model.sample(2, steps=4, seed=0)
    b = model.sample(2, steps=4, seed=0)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, model.sample(2, steps=4, seed=1))


def test_ddim_sampling_matches_a_diffusers_scheduler_loop(reference, tmp_path):
    """End to end: our model + the zoo's ddim sampler against diffusers' UNet + DDIMScheduler, same x_T."""
    from diffusers import DDIMScheduler

    model = DDPMModel.from_pretrained(_flat(reference, tmp_path / "flat"))
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    ours = model.sample(2, sampler="ddim", steps=5, eta=0.0, x_T=x_T)

    scheduler = DDIMScheduler(**{k: v for k, v in SCHEDULER.items() if k != "variance_type"})
    scheduler.set_timesteps(5)
    x = x_T.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(reference(x, t).sample, t, x, eta=0.0).prev_sample
    assert (ours - x).abs().max().item() <= 1e-4


def test_card_and_hub_source_load_a_flat_repo_from_the_hub(reference, x_t, tmp_path, hub_server):
    """``zoo.load("ddpm-cifar10")`` downloads the card's files from the (local test) Hub and loads them unchanged."""
    directory = _flat(reference, tmp_path / "repo")
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# ddpm\n"
    files["images/generated.png"] = b"\x89PNG not needed"
    hub_server.add_repo("google/ddpm-cifar10-32", files)

    model = zoo.load("ddpm-cifar10")
    _assert_same_as_reference(model, reference, x_t)
    assert model.card.name == "ddpm-cifar10" and model.schedule.variance_type == "fixed_large"
    fetched = {path for _, path in hub_server.requests if "/resolve/" in path}
    assert not any(p.endswith(("README.md", "generated.png")) for p in fetched)  # the card's allow-patterns
    _assert_same_as_reference(zoo.load("hf://google/ddpm-cifar10-32"), reference, x_t)
