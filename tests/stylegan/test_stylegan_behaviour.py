"""What StyleGAN2 promises beyond parity: demodulation keeps activations normalised, truncation, style mixing,
w_avg tracking, labels, seeded determinism (noise included), clamping and the fp16 / conv_clamp options."""

from __future__ import annotations

import pytest
import torch
from stylegan_helpers import PARITY_CONFIG, parity_generator, perturbed, tiny_config
from zoo_stylegan.generator import SynthesisLayer
from zoo_stylegan.layers import bias_act, modulated_conv2d
from zoo_stylegan.model import StyleGANModel

from zoo_core.errors import SamplerError


@pytest.fixture(scope="module")
def G():
    return parity_generator()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return perturbed(StyleGANModel(tiny_config())).eval()


# -- modulation ----------------------------------------------------------------------------------------------------
def test_demodulation_restores_unit_variance_whatever_the_styles():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 48, 12, 12, generator=g)
    weight = torch.randn(48, 48, 3, 3, generator=g)
    styles = torch.exp(
        torch.randn(4, 48, generator=g)
    )  # per-sample channel scales over an order of magnitude
    demod = modulated_conv2d(x, weight, styles, padding=1, demodulate=True)
    plain = modulated_conv2d(x, weight, styles, padding=1, demodulate=False)
    # Interior pixels (zero padding lowers the variance at the border): std ~1 with, ~sqrt(fan_in)*|s| without.
    demod_std = demod[:, :, 1:-1, 1:-1].std().item()
    plain_std = plain[:, :, 1:-1, 1:-1].std().item()
    assert abs(demod_std - 1) < 0.1
    assert plain_std > 20
    per_sample = demod[:, :, 1:-1, 1:-1].std(dim=(1, 2, 3))
    assert per_sample.min() > 0.85 and per_sample.max() < 1.15
    # Scaling a sample's styles changes nothing after demodulation.
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles * 7.0, padding=1), demod, atol=1e-4, rtol=1e-4
    )


def test_conv_clamp_bounds_the_layer_output():
    torch.manual_seed(0)
    layer = SynthesisLayer(8, 8, w_dim=4, resolution=8, conv_clamp=0.05).eval()
    x = torch.randn(2, 8, 8, 8) * 10
    y = layer(x, torch.randn(2, 4), noise_mode="none")
    assert y.abs().max() <= 0.05 + 1e-7 and (y.abs() > 0.049).any()
    expected = torch.tensor([-0.2 * 3 * 2**0.5, 1.0])  # lrelu(0.2) with gain sqrt(2), then the clamp
    torch.testing.assert_close(bias_act(torch.tensor([-3.0, 3.0]), act="lrelu", clamp=1.0), expected)


def test_fp16_resolutions_run_in_float32_on_the_cpu(tiny):
    fp16 = StyleGANModel(tiny_config(synthesis={"channel_base": 256, "channel_max": 32, "num_fp16_res": 2}))
    fp16.load_state_dict(tiny.state_dict())
    fp16.eval()
    assert fp16.synthesis.b16.use_fp16 and fp16.synthesis.b8.use_fp16 and not fp16.synthesis.b4.use_fp16
    a = fp16.sample(2, seed=3)
    assert a.dtype == torch.float32
    assert torch.equal(a, tiny.sample(2, seed=3))


# -- truncation and w_avg ------------------------------------------------------------------------------------------
def test_truncation_psi_zero_gives_the_w_avg_image_for_every_seed(G):
    images = [G.sample(2, seed=s, truncation_psi=0.0, labels=[1, 2]) for s in (0, 1, 2)]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])
    with torch.no_grad():
        w_avg_image = G.synthesis(G.mapping.w_avg.expand(1, G.num_ws, -1), noise_mode="const").clamp(-1, 1)
    torch.testing.assert_close(images[0], w_avg_image.expand(2, -1, -1, -1), atol=1e-5, rtol=0)
    assert not torch.equal(G.sample(2, seed=0, truncation_psi=1.0, labels=[1, 2]), images[0])


def test_truncation_cutoff_truncates_only_the_first_ws(G):
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2]), 4).float()
    with torch.no_grad():
        full = G.mapping(z, c)
        cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    expected_head = G.mapping.w_avg + 0.5 * (full[:, :2] - G.mapping.w_avg)
    torch.testing.assert_close(cut[:, :2], expected_head)
    assert torch.equal(cut[:, 2:], full[:, 2:])


def test_training_mode_moves_w_avg_toward_the_batch_mean():
    torch.manual_seed(0)
    model = StyleGANModel(tiny_config())
    model.mapping.w_avg.normal_()
    before = model.mapping.w_avg.clone()
    z = torch.randn(8, 16)
    model.train()
    with torch.no_grad():
        w = model.mapping(z, None, update_w_avg=False)[:, 0]
        model.mapping(z, None)
    beta = model.config.mapping.w_avg_beta
    torch.testing.assert_close(model.mapping.w_avg, w.mean(0) + beta * (before - w.mean(0)))
    model.eval()
    after = model.mapping.w_avg.clone()
    model.sample(4, seed=0)
    assert torch.equal(model.mapping.w_avg, after)


# -- style mixing --------------------------------------------------------------------------------------------------
def test_style_mixing_takes_the_second_w_from_the_crossover_layer_on(tiny):
    n, layer = 2, 3
    g = torch.Generator().manual_seed(10)
    z = torch.randn(n, 16, generator=g)
    z2 = torch.randn(n, 16, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        ws, ws2 = tiny.mapping(z, None), tiny.mapping(z2, None)
        expected = tiny.synthesis(torch.cat([ws[:, :layer], ws2[:, layer:]], 1), noise_mode="const").clamp(
            -1, 1
        )
        mixed = tiny.generate(z, mix_seed=99, mix_layer=layer)
        second = tiny.synthesis(ws2, noise_mode="const").clamp(-1, 1)
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=0)
    assert torch.equal(tiny.generate(z, mix_seed=99, mix_layer=tiny.num_ws), tiny.generate(z))
    torch.testing.assert_close(tiny.generate(z, mix_seed=99, mix_layer=0), second, atol=1e-5, rtol=0)
    # Through sample(): the sampler forwards the options.
    via_sample = tiny.sample(n, seed=10, mix_seed=99, mix_layer=layer)
    torch.testing.assert_close(via_sample, expected, atol=1e-5, rtol=0)


def test_style_mixing_rejects_a_layer_out_of_range(tiny):
    with pytest.raises(ValueError, match=r"mix_layer must be in 0..6 \(this model has 6 ws\)"):
        tiny.sample(1, seed=0, mix_seed=1, mix_layer=9)
    with pytest.raises(ValueError, match="mix_seed"):
        tiny.sample(1, seed=0, mix_layer=2)


# -- labels --------------------------------------------------------------------------------------------------------
def test_labels_select_the_class_embedding(G):
    a = G.sample(2, seed=0, labels=[0, 0])
    b = G.sample(2, seed=0, labels=[3, 3])
    assert not torch.equal(a, b)
    assert torch.equal(G.sample(2, seed=0, labels=3), b)
    assert torch.equal(G.sample(2, seed=0, class_labels=[3, 3]), b)


def test_labels_out_of_range_are_an_error(G):
    with pytest.raises(ValueError, match=r"class label 4 is out of range.*0\.\.3"):
        G.sample(2, seed=0, labels=[1, 4])
    with pytest.raises(ValueError, match="one int or 2 ints"):
        G.sample(2, seed=0, labels=[1, 2, 3])


def test_labels_given_to_an_unconditional_model_are_an_error(tiny):
    with pytest.raises(ValueError, match=r"unconditional \(c_dim=0\)"):
        tiny.sample(2, seed=0, labels=[1, 2])
    with pytest.raises(TypeError, match="unexpected arguments"):
        tiny.sample(2, seed=0, prompt="a cat")


def test_missing_labels_of_a_conditional_model_are_drawn_from_the_seed(G):
    n = 3
    g = torch.Generator().manual_seed(7)
    torch.randn(n, 32, generator=g)  # the sampler draws z first, then the labels come from the same generator
    labels = torch.randint(4, (n,), generator=g)
    drawn = G.sample(n, seed=7)
    assert torch.equal(drawn, G.sample(n, seed=7))
    assert torch.equal(drawn, G.sample(n, seed=7, labels=labels.tolist()))


# -- determinism, noise modes and the sampler -------------------------------------------------------------------------
@pytest.mark.parametrize("noise_mode", ["const", "random", "none"])
def test_the_same_seed_gives_the_same_images(tiny, noise_mode):
    a = tiny.sample(3, seed=5, noise_mode=noise_mode)
    assert a.shape == (3, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, tiny.sample(3, seed=5, noise_mode=noise_mode))
    assert not torch.equal(a, tiny.sample(3, seed=6, noise_mode=noise_mode))


def test_random_noise_comes_from_the_seed_and_changes_the_image(tiny):
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    r1 = tiny.generate(z, generator=torch.Generator().manual_seed(1), noise_mode="random")
    r1_again = tiny.generate(z, generator=torch.Generator().manual_seed(1), noise_mode="random")
    r2 = tiny.generate(z, generator=torch.Generator().manual_seed(2), noise_mode="random")
    assert torch.equal(r1, r1_again) and not torch.equal(r1, r2)
    assert not torch.equal(tiny.generate(z, noise_mode="const"), tiny.generate(z, noise_mode="none"))


def test_a_list_of_seeds_gives_each_image_independently_of_the_batch(G):
    batch = G.sample(2, seed=[11, 12], noise_mode="random")
    alone = G.sample(1, seed=[12], noise_mode="random")
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=0)


def test_the_gan_sampler_runs_one_step_only(tiny):
    assert tiny.default_sampler == "gan" and tiny.kind == "gan" and tiny.latent_shape == (16,)
    with pytest.raises(SamplerError, match="steps must be 1"):
        tiny.sample(1, seed=0, steps=5)
    with pytest.raises(ValueError, match="noise_mode"):
        tiny.sample(1, seed=0, noise_mode="loud")


def test_save_and_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    again = StyleGANModel.from_pretrained(tmp_path)
    assert torch.equal(
        again.sample(2, seed=1, noise_mode="random"), tiny.sample(2, seed=1, noise_mode="random")
    )


def test_parity_config_has_the_official_parameter_counts():
    model = StyleGANModel({**PARITY_CONFIG, "discriminator": {"channel_base": 512, "channel_max": 64}})
    assert model.num_ws == 6 and sum(p.numel() for p in model.parameters()) == 158_094
    assert sum(p.numel() for p in model.build_discriminator().parameters()) == 248_736


def test_the_fp16_path_stays_close_to_float32(monkeypatch):
    """On an accelerator fp16 blocks compute in half precision; force that path on the CPU to check it."""
    import zoo_stylegan.discriminator as discriminator_module
    import zoo_stylegan.generator as generator_module
    from stylegan_helpers import PARITY_D_CONFIG, official_io, parity_discriminator
    from zoo_stylegan.discriminator import Discriminator

    io = official_io()
    cfg = {**PARITY_CONFIG, "synthesis": {**PARITY_CONFIG["synthesis"], "num_fp16_res": 2, "conv_clamp": 256}}
    model = StyleGANModel(cfg)
    model.load_state_dict(parity_generator().state_dict())
    model.eval()
    D = Discriminator(4, 16, 3, PARITY_D_CONFIG.model_copy(update={"num_fp16_res": 2, "conv_clamp": 256}))
    D.load_state_dict(parity_discriminator().state_dict())
    D.eval()
    monkeypatch.setattr(generator_module, "use_fp16_on", lambda device: True)
    monkeypatch.setattr(discriminator_module, "use_fp16_on", lambda device: True)
    with torch.no_grad():
        img = model(io["z"], io["c"], truncation_psi=0.7, noise_mode="const")
        logits = D(io["img"], io["c"])
    assert img.dtype == torch.float32
    difference = (img - io["img"]).abs().max().item()
    assert 0 < difference < 2e-2  # half precision ran (not bit-equal), and stays close
    torch.testing.assert_close(logits, io["d_logits"], atol=5e-3, rtol=0)
