"""The latent text-to-image trainer (`zoo train t2i`): vocabulary, both stages' losses, export and exact resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from zoo_latent.model import LatentTextToImageModel
from zoo_latent.trainer import T2ITrainer
from zoo_latent.vocabulary import caption_words, learn_merges, word_tokenizer

import zoo
from zoo_core.data.shapes import COLORS, SHAPES, ShapesDataset
from zoo_core.errors import ConfigError
from zoo_core.training.batches import Batch

TINY_MODEL = {
    "unet": {
        "sample_size": 8,
        "block_out_channels": [16, 32],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "layers_per_block": 1,
        "attention_head_dim": 2,
        "cross_attention_dim": 16,
        "norm_num_groups": 8,
    },
    "vae": {
        "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "sample_size": 16,
        "mid_block_add_attention": False,
    },
    "text_encoder": {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 12,
    },
}
TINY_RUN = {
    "model": TINY_MODEL,
    "dataset_options": {"length": 24},
    "batch_size": 8,
    "lr": 2e-3,
    "ema_decay": 0.9,
    "progress": False,
    "log_every": 1,
    "checkpoint_every": 0,
}


def _batch(trainer: T2ITrainer, n: int = 8, step: int = 0) -> Batch:
    images, captions, _ = ShapesDataset(n, 16).as_tensors()
    data = {"image": images, "caption": captions, "index": torch.arange(n)}
    return Batch(data, torch.arange(n), n, (0, step, 0))


def _fit_fixed_batch(trainer: T2ITrainer, model: LatentTextToImageModel, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, _ = trainer.loss(_batch(trainer), SimpleNamespace(model=model))  # same samples, same noise
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def test_learnt_vocabulary_makes_every_caption_word_one_token_and_loads_in_transformers(tmp_path):
    from transformers import CLIPTokenizer as ReferenceTokenizer
    from zoo_latent.tokenizer import CLIPTokenizer

    words = caption_words(ShapesDataset(4, 16))
    assert set(SHAPES) | set(COLORS) | {"a", "on", "background"} <= set(words)
    assert learn_merges(reversed(words)) == learn_merges(words)  # a pure function of the word set
    tokenizer = word_tokenizer(words, max_length=12)
    for word in words:
        assert len(tokenizer.encode(word)) == 3, word  # start, the word, end
    caption = "a yellow star on a black background"
    assert tokenizer.decode(tokenizer.encode(caption)) == caption
    assert len(tokenizer.encode("a purple dodecahedron")) > 4  # unknown words still encode, byte by byte
    folder = tokenizer.save_pretrained(tmp_path / "tokenizer")
    ours = CLIPTokenizer.from_pretrained(folder)
    reference = ReferenceTokenizer.from_pretrained(str(folder))
    for text in (caption, "a purple cube", ""):
        ids = ours([text])[0].tolist()
        assert ids == reference(text, padding="max_length", max_length=12, truncation=True).input_ids


def test_vae_stage_trains_only_the_autoencoder_and_its_loss_decreases(tmp_path):
    trainer = T2ITrainer({**TINY_RUN, "stage": "vae", "out_dir": str(tmp_path)})
    torch.manual_seed(0)
    model = trainer.build_model()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"vae"}
    assert model.text_encoder.config.vocab_size == model.tokenizer.vocab_size
    losses = _fit_fixed_batch(trainer, model, 20)
    assert losses[-1] < 0.5 * losses[0], losses


def test_vae_loss_is_reconstruction_plus_weighted_kl(tmp_path):
    trainer = T2ITrainer({**TINY_RUN, "stage": "vae", "out_dir": str(tmp_path), "kl_weight": 0.5})
    model = trainer.build_model()
    batch = _batch(trainer)
    loss, metrics = trainer.loss(batch, SimpleNamespace(model=model))
    replay = _batch(trainer)
    x = replay.images
    posterior = model.vae.encode(x)
    z = posterior.mean + posterior.std * replay.randn_like(posterior.mean)
    diff = model.vae.decode(z) - x
    kl = (0.5 * (posterior.mean**2 + posterior.logvar.exp() - 1 - posterior.logvar)).sum((1, 2, 3)).mean()
    want = diff.abs().mean() + diff.pow(2).mean() + 0.5 * kl / x[0].numel()
    assert torch.allclose(loss, want, rtol=1e-5)
    assert torch.allclose(metrics["kl"], kl, rtol=1e-5)


def test_vae_crops_are_random_windows_on_the_latent_grid(tmp_path):
    trainer = T2ITrainer({**TINY_RUN, "stage": "vae", "out_dir": str(tmp_path), "crop_size": 8})
    model = trainer.build_model()
    batch = _batch(trainer)
    crops = trainer.crop(batch, model)
    assert crops.shape == (8, 3, 8, 8)
    replay = _batch(trainer)
    top, left = replay.randint(0, 5) * 2, replay.randint(0, 5) * 2  # offsets 0, 2, ..., 8 (downscale 2)
    for i in range(8):
        assert torch.equal(crops[i], replay.images[i, :, top[i] : top[i] + 8, left[i] : left[i] + 8])
    assert len({(int(a), int(b)) for a, b in zip(top, left, strict=True)}) > 1
    with pytest.raises(ConfigError, match="multiple of the autoencoder's downsampling factor 2"):
        T2ITrainer({**TINY_RUN, "stage": "vae", "out_dir": str(tmp_path), "crop_size": 9}).crop(batch, model)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    zoo.train("t2i", {**TINY_RUN, "stage": "vae", "max_steps": 3, "out_dir": str(out)})
    return out / "model"


def test_unet_stage_freezes_the_autoencoder_scales_latents_and_its_loss_decreases(vae_run, tmp_path):
    without_vae = {k: v for k, v in TINY_MODEL.items() if k != "vae"}  # the autoencoder comes from vae_from
    run = {
        **TINY_RUN,
        "model": without_vae,
        "stage": "unet",
        "vae_from": str(vae_run),
        "out_dir": str(tmp_path),
    }
    trainer = T2ITrainer(run)
    model = trainer.build_model()
    assert trainer.dataset_options()["size"] == 16
    vae = LatentTextToImageModel.from_pretrained(vae_run)
    reference = vae.vae.state_dict()
    assert all(torch.equal(t, reference[k]) for k, t in model.vae.state_dict().items())
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"unet", "text_encoder"}
    # scaling_factor: auto is 1 / std of the posterior samples of the first scaling_samples images
    images, _, _ = ShapesDataset(24, 16).as_tensors()
    with torch.no_grad():
        posterior = model.vae.encode(images)
    z = posterior.mean + posterior.std * torch.randn(
        posterior.mean.shape, generator=torch.Generator().manual_seed(0)
    )
    assert model.config.vae.scaling_factor == pytest.approx(1 / float(z.std()), rel=1e-5)
    assert (
        trainer.config.model.vae.scaling_factor == model.config.vae.scaling_factor
    )  # recorded in the config
    losses = _fit_fixed_batch(trainer, model, 25)
    assert losses[-1] < 0.7 * losses[0], losses


def test_caption_dropout_replaces_that_share_of_captions_with_the_empty_prompt(
    vae_run, tmp_path, monkeypatch
):
    seen = []
    trainer = T2ITrainer({**TINY_RUN, "stage": "unet", "vae_from": str(vae_run), "out_dir": str(tmp_path)})
    model = trainer.build_model()
    tokenize = model.tokenizer.__call__
    monkeypatch.setattr(
        type(model.tokenizer), "__call__", lambda self, p, **kw: seen.extend(p) or tokenize(p, **kw)
    )
    images, captions, _ = ShapesDataset(400, 16).as_tensors()
    batch = Batch(
        {"image": images, "caption": captions, "index": torch.arange(400)}, torch.arange(400), 400, (0, 0, 0)
    )
    with torch.no_grad():
        _, metrics = trainer.loss(batch, SimpleNamespace(model=model))
    dropped = [p == "" for p in seen]
    assert 0.06 < sum(dropped) / 400 < 0.14
    assert float(metrics["dropped"]) == pytest.approx(sum(dropped) / 400)
    assert all(p == c for p, c, d in zip(seen, captions, dropped, strict=True) if not d)


def test_cached_latents_give_the_same_loss_as_encoding_each_step(vae_run, tmp_path):
    trainer = T2ITrainer({**TINY_RUN, "stage": "unet", "vae_from": str(vae_run), "out_dir": str(tmp_path)})
    model = trainer.build_model()
    dataset = trainer.build_dataset()
    assert dataset.moments is not None and len(dataset.moments) == 24
    items = [dataset[i] for i in range(8)]
    data = {
        "image": torch.stack([it["image"] for it in items]),
        "caption": [it["caption"] for it in items],
        "index": torch.arange(8),
    }
    with torch.no_grad():
        direct, _ = trainer.loss(
            Batch(dict(data), torch.arange(8), 8, (0, 1, 0)), SimpleNamespace(model=model)
        )
        data["moments"] = torch.stack([it["moments"] for it in items])
        cached, _ = trainer.loss(Batch(data, torch.arange(8), 8, (0, 1, 0)), SimpleNamespace(model=model))
    assert torch.allclose(direct, cached, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_unet_stage_exports_a_loadable_model_and_resumes_exactly(vae_run, tmp_path):
    common = {**TINY_RUN, "stage": "unet", "vae_from": str(vae_run), "caption_dropout": 0.5}
    full = zoo.train("t2i", {**common, "max_steps": 4, "out_dir": str(tmp_path / "full")})
    zoo.train("t2i", {**common, "max_steps": 2, "checkpoint_every": 2, "out_dir": str(tmp_path / "cut")})
    resumed = zoo.train("t2i", {**common, "max_steps": 4, "out_dir": str(tmp_path / "cut")}, resume=True)
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for name, tensor in full.ema_model().state_dict().items():
        assert torch.equal(tensor, resumed.ema_model().state_dict()[name]), name

    model = zoo.load(str(tmp_path / "full" / "model"))
    assert isinstance(model, LatentTextToImageModel) and model.tokenizer is not None
    assert model.config.vae.scaling_factor == full.model.config.vae.scaling_factor
    images = model.sample(2, prompt="a red circle on a blue background", sampler="ddim", steps=2, seed=0)
    assert images.shape == (2, 3, 16, 16)


def test_bad_trainer_configs_error_clearly(tmp_path):
    with pytest.raises(ConfigError, match="vae_from"):
        T2ITrainer({**TINY_RUN, "stage": "unet"})
    with pytest.raises(ConfigError, match="stage"):
        T2ITrainer({**TINY_RUN, "stage": "text"})
    with pytest.raises(ConfigError, match="vae_from .* cannot be loaded: Cannot tell which model"):
        T2ITrainer(
            {**TINY_RUN, "stage": "unet", "vae_from": str(tmp_path), "out_dir": str(tmp_path)}
        ).build_model()


def test_load_base_gives_a_frozen_latent_model_and_refuses_others():
    from zoo_latent.trainer import check_base, load_base

    from zoo_core.errors import UnknownNameError

    model = load_base("t2i", "DreamBooth")
    assert isinstance(model, LatentTextToImageModel) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="'ddpm' is a .*not a latent text-to-image model"):
        load_base("ddpm", "DreamBooth")
    with pytest.raises(UnknownNameError, match="t2i"):
        check_base("t2j")
