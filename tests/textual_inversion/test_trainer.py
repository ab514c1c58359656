"""The textual-inversion trainer: only the new token's rows change, exact resume, the diffusers file format, the
CLI and its errors before any work."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from zoo_textual_inversion.demo import write_instance_images

import zoo
from zoo_core.cli import main
from zoo_core.errors import ConfigError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_instance_images(tmp_path_factory.mktemp("hearts") / "images", n=3)


def _train(images, out, **fields):
    options = {
        "images": str(images),
        "placeholder_token": "<heart>",
        "initializer_token": "star",
        "max_steps": 4,
        "batch_size": 2,
        "lr": 0.05,
        "out_dir": str(out),
        "progress": False,
        **fields,
    }
    return zoo.train("textual-inversion", **options)


def test_only_the_new_rows_are_learned_everything_else_bit_identical(images, tmp_path):
    state = _train(images, tmp_path / "run", num_vectors=2)
    trainer = state.trainer
    (params,) = [group["params"] for group in state.optimizers["model"].param_groups]
    assert len(params) == 1 and params[0] is state.model.vectors  # the optimizer sees nothing else
    fresh = zoo.load("t2i").state_dict()
    trained = trainer.base.state_dict()
    key = "text_encoder.text_model.embeddings.token_embedding.weight"
    assert trained.keys() == fresh.keys()
    assert all(torch.equal(trained[k], v) for k, v in fresh.items() if k != key)
    rows = fresh[key].shape[0]
    assert torch.equal(trained[key][:rows], fresh[key])  # every row of the vocabulary, bit for bit
    embeds = load_file(tmp_path / "run" / "learned_embeds.safetensors")
    assert list(embeds) == ["<heart>"] and embeds["<heart>"].shape == (2, 32)
    star = fresh[key][trainer.base.tokenizer.token_to_id("star</w>")]
    assert (embeds["<heart>"] - star).abs().max() > 1e-3  # learned away from the initializer
    model = zoo.load("t2i")
    assert model.load_textual_inversion(tmp_path / "run" / "learned_embeds.safetensors") == ["<heart>"]
    weight = model.text_encoder.token_embedding.weight
    assert torch.equal(weight[rows:], embeds["<heart>"]) and torch.equal(weight[:rows], fresh[key])


def test_resume_from_a_checkpoint_matches_the_straight_run(images, tmp_path):
    straight = load_file(_train(images, tmp_path / "a").out_dir / "learned_embeds.safetensors")
    _train(images, tmp_path / "b", stop_at=2)
    resumed = zoo.train(
        "textual-inversion",
        images=str(images),
        placeholder_token="<heart>",
        initializer_token="star",
        max_steps=4,
        batch_size=2,
        lr=0.05,
        out_dir=str(tmp_path / "b"),
        progress=False,
        resume=True,
    )
    assert resumed.step == 4
    assert torch.equal(
        load_file(resumed.out_dir / "learned_embeds.safetensors")["<heart>"], straight["<heart>"]
    )


def test_cli_trains_and_writes_learned_embeds(images, tmp_path, capsys):
    code = main(
        [
            "train", "textual-inversion", "--base", "t2i", "--images", str(images), "--placeholder-token",
            "<sks>", "--initializer-token", "star", "--steps", "2", "--batch-size", "2", "--out",
            str(tmp_path / "cli"), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    assert list(load_file(tmp_path / "cli" / "learned_embeds.safetensors")) == ["<sks>"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--images", "/no/such/folder"], "does not exist"),
        (["--initializer-token", "heart"], "initializer token 'heart' is 5 tokens"),
        (
            ["--placeholder-token", "circle"],
            "'circle' is already in the model's vocabulary (the word 'circle'): pick another placeholder, or --force",
        ),
        (["--initializer-token", "two words"], "must be one word"),
        (["--templates", "['no placeholder']"], "exactly once"),
    ],
)
def test_cli_errors_are_one_line_before_any_work(images, tmp_path, capsys, flags, message):
    argv = {
        "--images": str(images),
        "--placeholder-token": "<sks>",
        "--initializer-token": "star",
        "--out": str(tmp_path / "bad"),
        "--steps": "2",
    }
    argv.update(dict(zip(flags[::2], flags[1::2], strict=True)))
    code = main(["train", "textual-inversion", *[x for kv in argv.items() for x in kv]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_a_folder_with_non_images_is_refused(tmp_path):
    folder = write_instance_images(tmp_path / "imgs", n=2)
    (folder / "notes.doc").write_text("x")
    with pytest.raises(ConfigError, match="notes.doc"):
        _train(folder, tmp_path / "run")


def test_validation_grids_show_the_learned_token(images, tmp_path):
    state = _train(images, tmp_path / "run", max_steps=2, sample_every=2, sample_n=2, sample_steps=2)
    grids = sorted((tmp_path / "run").rglob("*.png"))
    assert grids, "no validation grid written"
    base = state.trainer.base
    ids = [base.tokenizer.token_to_id("<heart>")]
    assert torch.equal(base.text_encoder.token_embedding.weight[ids].detach(), state.model.vectors.detach())


def test_force_trains_over_a_vocabulary_word_and_says_so(images, tmp_path, capsys):
    state = _train(images, tmp_path / "run", placeholder_token="circle", force=True, max_steps=2)
    assert "--force: placeholder 'circle' shadows the word 'circle'" in capsys.readouterr().err
    base = state.trainer.base
    fresh = zoo.load("t2i").text_encoder.token_embedding.weight
    weight = base.text_encoder.token_embedding.weight
    assert torch.equal(weight[: fresh.shape[0]], fresh)  # the word's own row, like every other, untouched
    new = base.tokenizer.token_to_id("circle")
    assert new >= fresh.shape[0] and base.tokenizer.encode("a circle")[2] == new
    embeds = load_file(tmp_path / "run" / "learned_embeds.safetensors")
    assert torch.equal(embeds["circle"], state.model.vectors.detach())
    model = zoo.load("t2i")
    with pytest.raises(ValueError, match="already in the model's vocabulary"):
        model.load_textual_inversion(tmp_path / "run")
    assert model.load_textual_inversion(tmp_path / "run", force=True) == ["circle"]


def test_a_placeholder_loaded_in_a_saved_base_is_refused_or_reinitialised_with_force(
    images, tmp_path, capsys
):
    base = zoo.load("t2i")
    base.load_textual_inversion({"<heart>": torch.full((3, 32), 7.0)})
    folder = str(base.save_pretrained(tmp_path / "base"))
    with pytest.raises(ConfigError, match="a textual-inversion token loaded in the base.*--force"):
        _train(images, tmp_path / "refused", base=folder)
    state = _train(images, tmp_path / "run", base=folder, force=True, max_steps=1, lr=1e-9)
    assert "replaces the base's textual-inversion token '<heart>', re-initialised from 'star'" in (
        capsys.readouterr().err
    )
    trained = state.trainer.base
    star = trained.text_encoder.token_embedding.weight[trained.tokenizer.token_to_id("star</w>")]
    assert state.model.vectors.shape == (1, 32)  # the base's 3 vectors are gone, 1 re-initialised one
    assert (state.model.vectors[0] - star).abs().max() < 1e-6
    assert trained.tokenizer.multi_vector == {}


def test_bf16_autocast_run_learns_finite_vectors(images, tmp_path):
    state = _train(images, tmp_path / "run", mixed_precision="bf16", max_steps=2)
    vectors = state.model.vectors.detach()
    assert torch.isfinite(vectors).all()
    star = zoo.load("t2i").text_encoder.token_embedding.weight[
        state.trainer.base.tokenizer.token_to_id("star</w>")
    ]
    assert (vectors - star).abs().max() > 1e-3
