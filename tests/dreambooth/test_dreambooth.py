"""DreamBooth: bad input fails before any work, class images are cached by prompt and seed, the loss is
mse(instance) + lambda mse(class), LoRA trains only adapters and saves a file diffusers reads with the same
output, and an interrupted run resumes exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_dreambooth import class_images
from zoo_dreambooth.demo import write_instances

import zoo
from zoo_core.errors import ConfigError, UnknownNameError
from zoo_core.training.api import make_trainer

QUICK = {
    "checkpoint_every": 0,
    "progress": False,
    "log_every": 1,
    "class_steps": 2,
    "sample_steps": 2,
}


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    return write_instances(tmp_path_factory.mktemp("instances") / "sks", size=32)[0].parent


def _trainer(tmp_path, instances, **fields):
    config = {
        "base": "t2i",
        "images": str(instances),
        "instance_prompt": "a sks shape",
        "out_dir": str(tmp_path / "run"),
        "max_steps": 2,
        **QUICK,
        **fields,
    }
    return make_trainer("dreambooth", config)


# -- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "has 0 images"),
        ("other_file", "not images.*notes.md"),
        ("broken_image", "cannot read broken.png"),
    ],
)
def test_bad_instance_folders_fail_before_any_work(tmp_path, setup, message):
    folder = tmp_path / "images"
    if setup != "missing":
        folder.mkdir()
    if setup == "other_file":
        Image.new("RGB", (8, 8)).save(folder / "a.png")
        (folder / "notes.md").write_text("hi")
    if setup == "broken_image":
        (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=message):
        _trainer(tmp_path, folder)
    assert not (tmp_path / "run").exists()


def test_unknown_base_and_bad_rank_are_one_line_errors(tmp_path, instances):
    with pytest.raises(UnknownNameError, match="t2i"):
        _trainer(tmp_path, instances, base="t2j")
    with pytest.raises(ConfigError, match="rank: Input should be greater than 0"):
        _trainer(tmp_path, instances, lora=True, rank=0)
    assert not (tmp_path / "run").exists()


def test_cli_errors_exit_2_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo_core.cli",
            "train",
            "dreambooth",
            "--base",
            "t2i",
            "--images",
            str(tmp_path / "none"),
            "--instance-prompt",
            "a sks shape",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_lora_gets_its_own_default_learning_rate(tmp_path, instances):
    assert _trainer(tmp_path, instances).config.lr == 5e-6
    assert _trainer(tmp_path, instances, lora=True).config.lr == 1e-4
    assert _trainer(tmp_path, instances, lora=True, lr=3e-4).config.lr == 3e-4


# -- class images --------------------------------------------------------------------------------------------------
def test_class_images_are_reused_and_completed(tmp_path):
    model = zoo.load("t2i")
    specs = class_images.wanted(
        ["a red circle on a blue background", "a green star on a white background"],
        4,
        7,
        base="t2i",
        sampler="ddim",
        steps=2,
        guidance=3.0,
        size=32,
    )
    directory = tmp_path / "class"
    class_images.generate(model, directory, class_images.missing(directory, specs[:3]))
    first = {s.filename: (directory / s.filename).stat().st_mtime_ns for s in specs[:3]}
    todo = class_images.missing(directory, specs)
    assert todo == specs[3:]  # the three on disk are reused, one is missing
    class_images.generate(model, directory, todo)
    assert class_images.missing(directory, specs) == []
    assert all((directory / f).stat().st_mtime_ns == t for f, t in first.items())  # not drawn again
    manifest = json.loads((directory / class_images.MANIFEST).read_text())
    assert [(m["spec"]["prompt"], m["spec"]["seed"]) for m in manifest] == [(s.prompt, s.seed) for s in specs]
    # the image on disk is the base model's sample for that prompt and seed
    want = model.sample(
        1, prompt=specs[3].prompt, seed=[specs[3].seed], sampler="ddim", steps=2, guidance_scale=3.0
    )
    got = torch.from_numpy(np.array(Image.open(directory / specs[3].filename))).float()
    assert (got.permute(2, 0, 1) / 127.5 - 1 - want[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6
    # another prompt, another seed or another sampler is another image
    other = class_images.wanted(
        ["a red circle on a blue background"],
        1,
        7,
        base="t2i",
        sampler="ddim",
        steps=3,
        guidance=3.0,
        size=32,
    )
    assert class_images.missing(directory, other) == other


def test_ranks_sharing_the_class_batches_leave_the_folder_of_one_process(tmp_path):
    """What torchrun's ranks do, in turn: rank r of 2 draws batches r, r + 2, ... into its manifest shard; the
    merge leaves the same PNGs and manifest as one process, and a shard left by a stopped run counts as drawn."""
    model = zoo.load("t2i")
    specs = class_images.wanted(
        ["a red circle on a blue background"],
        5,
        3,
        base="t2i",
        sampler="ddim",
        steps=2,
        guidance=3.0,
        size=32,
    )
    one, two = tmp_path / "one", tmp_path / "two"
    class_images.generate(model, one, specs, batch=2)
    class_images.generate(model, two, specs, batch=2, rank=1, world_size=2)
    drawn = sorted(p.name for p in two.glob("*.png"))
    assert drawn == sorted(s.filename for s in specs[2:4])  # rank 1: the second batch only
    assert class_images.missing(two, specs) == specs[:2] + specs[4:]  # its shard is read as a manifest
    class_images.generate(model, two, specs, batch=2, rank=0, world_size=2)
    class_images.merge_manifests(two)
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    assert not list(two.glob(class_images.SHARD_GLOB))
    assert all((one / p.name).read_bytes() == p.read_bytes() for p in two.iterdir())


# -- training ------------------------------------------------------------------------------------------------------
def test_prior_preservation_loss_is_instance_plus_lambda_class(tmp_path, instances):
    trainer = _trainer(
        tmp_path,
        instances,
        class_prompt="a red circle on a blue background",
        num_class_images=2,
        prior_loss_weight=0.5,
        batch_size=2,
        lr=1e-4,
    )
    state = trainer.fit()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        assert line["loss"] == pytest.approx(line["instance_loss"] + 0.5 * line["prior_loss"], rel=1e-5)
    assert len(list((tmp_path / "run" / "class_images").glob("*.png"))) == 2
    trained = zoo.load(str(tmp_path / "run" / "model"))
    base = zoo.load("t2i")
    assert not torch.equal(trained.unet.conv_in.weight, base.unet.conv_in.weight)
    assert torch.equal(trained.vae.encoder.conv_in.weight, base.vae.encoder.conv_in.weight)  # frozen
    assert torch.equal(
        trained.text_encoder.text_model.embeddings.token_embedding.weight,
        base.text_encoder.text_model.embeddings.token_embedding.weight,
    )
    assert state.step == 2
    # the same folder is a diffusers pipeline with the fine-tuned UNet
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        tmp_path / "run" / "model", safety_checker=None, requires_safety_checker=False
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, trained.unet.config.in_channels, 8, 8, generator=g)
    states = torch.randn(1, 77, trained.text_encoder.config.hidden_size, generator=g)
    with torch.no_grad():
        ours = trained.unet(x, torch.tensor([300]), states)
        theirs = pipe.unet(x, torch.tensor([300]), states).sample
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_without_class_prompt_there_is_no_prior_term(tmp_path, instances):
    _trainer(tmp_path, instances, lr=1e-4).fit()
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "prior_loss" not in line and line["loss"] == line["instance_loss"]
    assert not (tmp_path / "run" / "class_images").exists()


def test_lora_trains_only_adapters_and_resumes_exactly(tmp_path, instances):
    straight = _trainer(tmp_path / "a", instances, lora=True, max_steps=4, lr=1e-2)
    straight.fit()
    paused = _trainer(tmp_path / "b", instances, lora=True, max_steps=4, stop_at=2, lr=1e-2)
    paused.fit()
    resumed = _trainer(tmp_path / "b", instances, lora=True, max_steps=4, lr=1e-2)
    resumed.fit(resume=True)
    a, b = straight.lora_pairs()["unet"], resumed.lora_pairs()["unet"]
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k].up, b[k].up) and torch.equal(a[k].down, b[k].down) for k in a)
    assert any(a[k].up.abs().max() > 0 for k in a)  # B starts at zero and has moved
    # the base weights did not move; the checkpoint holds only the adapters
    base = zoo.load("t2i")
    name = next(iter(a))
    layer = dict(straight._model.unet.named_modules())[name]
    assert torch.equal(layer.base_layer.weight, dict(base.unet.named_modules())[name].weight)
    from safetensors.torch import load_file

    saved = load_file(next((tmp_path / "a" / "run" / "checkpoints").glob("step-*")) / "model.safetensors")
    assert saved and all("lora_" in k for k in saved)


def test_ema_run_exports_the_average_and_keeps_the_trained_weights_live(tmp_path, instances):
    """Only rank 0 exports, so the export must not put the average into the live weights (the ranks would then
    hold different models); what it writes is the EMA copy."""
    from safetensors.torch import load_file

    state = _trainer(tmp_path, instances, lora=True, lr=1e-2, ema_decay=0.5).fit()
    saved = load_file(tmp_path / "run" / "model" / "pytorch_lora_weights.safetensors")

    def named(module):  # checkpoint names -> the file's (alpha = rank: the scale folded into B is 1)
        return {
            k.replace(":", ".").replace("/", ".").replace(".default", ""): v
            for k, v in module.state_dict().items()
        }

    ema, live = named(state.ema["model"].module), named(state.model)
    assert saved.keys() == ema.keys() == live.keys() and saved
    assert all(torch.equal(saved[k], ema[k]) for k in saved)
    assert any(not torch.equal(live[k], ema[k]) for k in saved if "lora_B" in k)


@pytest.mark.slow
def test_lora_output_loads_in_diffusers_and_zoo_with_the_same_unet_output(tmp_path):
    from diffusers import StableDiffusionPipeline
    from latent_helpers import make_pipeline

    folder, _ = make_pipeline(tmp_path / "sd")
    images = write_instances(tmp_path / "inst", size=64)[0].parent
    for path in images.glob("*.txt"):
        path.write_text("a red cube\n")  # words of the tiny pipeline's vocabulary
    trainer = make_trainer(
        "dreambooth",
        {
            "base": str(folder),
            "images": str(images),
            "instance_prompt": "a red cube",
            "out_dir": str(tmp_path / "run"),
            "lora": True,
            "rank": 2,
            "lora_alpha": 4,
            "max_steps": 2,
            "lr": 1e-2,
            "train_text_encoder": True,
            **QUICK,
        },
    )
    trainer.fit()
    out = tmp_path / "run" / "model"
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    g = torch.Generator().manual_seed(0)
    x, t, states = (
        torch.randn(1, 4, 8, 8, generator=g),
        torch.tensor([300]),
        torch.randn(1, 5, 32, generator=g),
    )
    with torch.no_grad():
        trained = trainer._model.unet.eval()(x, t, states)
        pipe = StableDiffusionPipeline.from_pretrained(
            folder, safety_checker=None, requires_safety_checker=False
        )
        pipe.load_lora_weights(str(out))
        theirs = pipe.unet(x, t, states).sample
        ours = zoo.load(str(folder))
        base = ours.unet(x, t, states)
        ours.load_lora(out)
        mine = ours.unet(x, t, states)
        ids = pipe.tokenizer(
            ["a red cube"], padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids
        text_theirs = pipe.text_encoder(ids).last_hidden_state
        text_mine = ours.text_encoder(ids).last_hidden_state
        text_trained = trainer._model.text_encoder(ids).last_hidden_state
    assert (trained - base).abs().max() > 1e-4
    assert (mine - trained).abs().max() <= 1e-4
    assert (theirs - trained).abs().max() <= 1e-4
    assert (text_mine - text_trained).abs().max() <= 1e-4 and (text_theirs - text_trained).abs().max() <= 1e-4


@pytest.mark.parametrize("lora", [False, True])
def test_bf16_autocast_run_has_a_finite_loss_and_changes_the_weights(tmp_path, instances, lora):
    trainer = _trainer(tmp_path, instances, mixed_precision="bf16", lora=lora, lr=1e-3)
    state = trainer.fit()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in lines if "loss" in line]
    assert len(losses) == 2 and all(np.isfinite(losses))
    before = zoo.load("t2i").unet.state_dict()
    after = state.trainer._model.unet.state_dict()
    if lora:
        assert any("lora_B" in k and v.abs().max() > 0 for k, v in after.items())
    else:
        assert any((after[k] - v).abs().max() > 0 for k, v in before.items())
