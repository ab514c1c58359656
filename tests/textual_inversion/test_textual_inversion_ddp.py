"""Textual inversion under torchrun (gloo, 2 CPU processes): both ranks learn the same vectors bit for bit, the
saved ``learned_embeds.safetensors`` is rank 0's, every other row of the vocabulary and every other weight stay
bit-identical to the base, 2 ranks at batch b match one process at batch 2b, and a stopped run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_run import assert_matches_one_process, metrics, run_trainer
from safetensors.torch import load_file
from zoo_textual_inversion.demo import write_instance_images

import zoo

# each test starts torchrun (two processes importing torch and the model each time): 20-40 s
pytestmark = pytest.mark.slow
EMBEDDING = "text_encoder.text_model.embeddings.token_embedding.weight"
LR = 0.05


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_instance_images(tmp_path_factory.mktemp("hearts") / "images", n=4)


def _config(run_dir: Path, images: Path, **fields) -> dict:
    return {
        "images": str(images),
        "placeholder_token": "<heart>",
        "initializer_token": "star",
        "max_steps": 2,
        "batch_size": 4,
        "lr": LR,
        "checkpoint_every": 1,
        "log_every": 1,
        "progress": False,
        "out_dir": str(run_dir),
        **fields,
    }


@pytest.mark.parametrize("num_vectors", [1, 2])
def test_two_ranks_learn_the_same_rows_and_leave_the_rest_of_the_model_bit_identical(
    tmp_path, images, num_vectors
):
    two = run_trainer(
        "textual-inversion",
        tmp_path / "two",
        _config(tmp_path / "two" / "run", images, num_vectors=num_vectors),
        2,
    )
    one = run_trainer(
        "textual-inversion",
        tmp_path / "one",
        _config(tmp_path / "one" / "run", images, num_vectors=num_vectors),
        1,
    )
    assert_matches_one_process(two, one, tmp_path / "two" / "run", tmp_path / "one" / "run", LR)

    vectors = two["model/vectors"]
    assert vectors.shape == (num_vectors, 32)
    saved = load_file(tmp_path / "two" / "run" / "learned_embeds.safetensors")
    assert list(saved) == ["<heart>"] and torch.equal(saved["<heart>"], vectors)  # rank 0's, bit for bit
    fresh = zoo.load("t2i").state_dict()
    latent = {k.removeprefix("latent/"): v for k, v in two.items() if k.startswith("latent/")}
    assert latent.keys() == fresh.keys()
    assert all(torch.equal(latent[k], v) for k, v in fresh.items() if k != EMBEDDING)
    rows = fresh[EMBEDDING].shape[0]
    assert latent[EMBEDDING].shape[0] == rows + num_vectors
    assert torch.equal(latent[EMBEDDING][:rows], fresh[EMBEDDING])  # the whole vocabulary, bit for bit
    star = fresh[EMBEDDING][zoo.load("t2i").tokenizer.token_to_id("star</w>")]
    assert (vectors - star).abs().max() > 0.5 * LR  # learned away from the initializer


def test_a_stopped_two_rank_run_resumes_exactly(tmp_path, images):
    config = _config(tmp_path / "a" / "run", images, num_vectors=2)
    straight = run_trainer("textual-inversion", tmp_path / "a", config, 2)
    paused = {**config, "out_dir": str(tmp_path / "b" / "run"), "stop_at": 1}
    run_trainer("textual-inversion", tmp_path / "b1", paused, 2)
    resumed = run_trainer(
        "textual-inversion", tmp_path / "b2", {**paused, "stop_at": None, "resume": True}, 2
    )
    assert torch.equal(resumed["model/vectors"], straight["model/vectors"])
    assert "resuming from" in (tmp_path / "b2" / "stderr.txt").read_text()
    steps = [line["step"] for line in metrics(tmp_path / "b" / "run")]
    assert steps == [1, 2]
    saved = load_file(tmp_path / "b" / "run" / "learned_embeds.safetensors")["<heart>"]
    assert torch.equal(saved, straight["model/vectors"])
