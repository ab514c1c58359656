"""DreamBooth under torchrun (gloo, 2 CPU processes): both ranks end with the same weights bit for bit, the saved
output is what rank 0 holds, a 2-rank run at per-rank batch b matches one process at batch 2b, the class images
are drawn once (the ranks share the batches) and the cache ends as a one-process run leaves it, and an
interrupted 2-rank run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_run import assert_matches_one_process, metrics, run_trainer
from safetensors.torch import load_file
from zoo_dreambooth.demo import write_instances

import zoo

# each test starts torchrun (two processes importing torch and the model each time): 30-50 s
pytestmark = pytest.mark.slow

CLASS_PROMPTS = ["a red circle on a blue background", "a green star on a white background"]


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    return write_instances(tmp_path_factory.mktemp("instances") / "sks", size=32)[0].parent


def _config(out: Path, instances: Path, **fields) -> dict:
    return {
        "base": "t2i",
        "images": str(instances),
        "instance_prompt": "a sks shape",
        "out_dir": str(out / "run"),
        "max_steps": 2,
        "batch_size": 2,  # one instance image per rank and step
        "checkpoint_every": 1,
        "log_every": 1,
        "progress": False,
        "sample_steps": 2,
        "class_steps": 2,
        **fields,
    }


def _run(out: Path, config: dict, nproc: int) -> dict[str, torch.Tensor]:
    return run_trainer("dreambooth", out, config, nproc)


def _metrics(out: Path) -> list[dict]:
    return metrics(out / "run")


def test_full_unet_two_ranks_agree_save_rank0_and_match_one_process(tmp_path, instances):
    lr = 1e-3
    two = _run(tmp_path / "two", _config(tmp_path / "two", instances, lr=lr), nproc=2)
    one = _run(tmp_path / "one", _config(tmp_path / "one", instances, lr=lr), nproc=1)
    assert_matches_one_process(two, one, tmp_path / "two" / "run", tmp_path / "one" / "run", lr)
    # training moved the UNet by far more than the tolerance
    base = zoo.load("t2i").state_dict()
    unet = [k for k in base if k.startswith("unet.")]
    assert max((two[f"latent/{k}"] - base[k]).abs().max() for k in unet) > 0.5 * lr
    # the exported pipeline folder and the last checkpoint are exactly rank 0's weights
    saved = zoo.load(str(tmp_path / "two" / "run" / "model")).state_dict()
    assert saved.keys() == base.keys()
    assert all(torch.equal(saved[k], two[f"latent/{k}"]) for k in saved)
    checkpoint = load_file(tmp_path / "two" / "run" / "checkpoints" / "step-0000002" / "model.safetensors")
    assert checkpoint.keys() == {k.removeprefix("model/") for k in two if k.startswith("model/")}
    assert all(torch.equal(v, two[f"model/{k}"]) for k, v in checkpoint.items())


def test_lora_with_prior_text_encoder_and_ema_two_ranks_share_class_images_and_resume_exactly(
    tmp_path, instances
):
    lr = 1e-2
    prior = {
        "lora": True,
        "lr": lr,
        "class_prompt": CLASS_PROMPTS,
        "num_class_images": 6,
        "class_batch_size": 2,
        "train_text_encoder": True,  # adapters in both towers
        "ema_decay": 0.5,  # the output is the average (rank 0 exports it)
        "sample_every": 1,  # validation grids on rank 0 between steps
        "sample_n": 2,
    }
    two = _run(tmp_path / "two", _config(tmp_path / "two", instances, **prior), nproc=2)
    one = _run(tmp_path / "one", _config(tmp_path / "one", instances, **prior), nproc=1)
    assert_matches_one_process(two, one, tmp_path / "two" / "run", tmp_path / "one" / "run", lr)
    assert "prior_loss" in _metrics(tmp_path / "two")[-1]

    # the class images: drawn in three batches, two by rank 0 and one by rank 1, into one folder that ends
    # byte for byte as the one-process run's (the same PNGs, one merged manifest, no shard left)
    folders = [tmp_path / run / "run" / "class_images" for run in ("one", "two")]
    names = [sorted(p.name for p in folder.iterdir()) for folder in folders]
    assert names[0] == names[1] and len(names[0]) == 7 and "manifest.json" in names[0]
    assert all((folders[0] / n).read_bytes() == (folders[1] / n).read_bytes() for n in names[0])
    said = (tmp_path / "two" / "stderr.txt").read_text()
    assert said.count("drawing 6 class images") == 1 and "2 processes sharing the batches" in said

    # the LoRA file holds rank 0's EMA adapters (alpha = rank: the scale folded into B is 1), in both towers
    lora = load_file(tmp_path / "two" / "run" / "model" / "pytorch_lora_weights.safetensors")
    average = {
        k.removeprefix("ema/").replace(":", ".").replace("/", ".").replace(".default", ""): v
        for k, v in two.items()
        if k.startswith("ema/")
    }
    assert lora.keys() == average.keys() and {k.split(".")[0] for k in lora} == {"unet", "text_encoder"}
    assert all(torch.equal(lora[k], average[k]) for k in lora)
    assert any(v.abs().max() > 0 for k, v in lora.items() if "lora_B" in k)
    assert len(list((tmp_path / "two" / "run" / "samples").glob("step-*.png"))) == 2

    # stopped after step 1 under two ranks, then resumed under two ranks: the same weights as the straight run
    # (the class images are found in the cache this time)
    paused = _config(tmp_path / "two", instances, **prior, stop_at=1, out_dir=str(tmp_path / "b" / "run"))
    paused["class_dir"] = str(folders[1])
    _run(tmp_path / "b1", paused, nproc=2)
    resumed = {**paused, "stop_at": None, "resume": True}
    result = _run(tmp_path / "b2", resumed, nproc=2)
    assert all(torch.equal(result[k], two[k]) for k in two if k.startswith(("model/", "ema/")))
    lines = _metrics(tmp_path / "b")
    assert [line["step"] for line in lines] == [1, 2]
    assert lines[-1]["loss"] == _metrics(tmp_path / "two")[-1]["loss"]
