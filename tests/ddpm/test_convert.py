"""The pytorch-ddpm converter (w86763777/pytorch-ddpm ``ckpt.pt``) on state dicts with the official key names.

The key names and shapes come from the official UNet at its CIFAR-10 configuration
(tests/fixtures/ddpm/pytorch_ddpm_cifar10_keys.json). The forward check compares the converted model with an
independent functional re-statement of the official network, run on the official key names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from zoo_ddpm.convert import convert_pytorch_ddpm
from zoo_ddpm.model import DDPMModel
from zoo_ddpm.unet import UNet2D

import zoo
from zoo_core.cli import main as zoo_main
from zoo_core.errors import WeightsError
from zoo_core.weights import load_safetensors

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ddpm" / "pytorch_ddpm_cifar10_keys.json"
OFFICIAL = json.loads(FIXTURE.read_text())


def official_table(T: int, dim: int) -> torch.Tensor:
    """The frozen embedding table: row t = [sin(t w_0), cos(t w_0), sin(t w_1), ...], w_i = 10000^(-2i/dim)."""
    w = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * w[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(T, dim).float()


def official_state(scale: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names; ``scale`` divides every multiple of 128 (1/scale width)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in OFFICIAL["params"]:
        shape = [d // scale if d % 128 == 0 else d for d in shape]
        if key == "time_embedding.timembedding.0.weight":
            state[key] = official_table(*shape)
        elif len(shape) == 1 and (
            "block1.0" in key or "block2.0" in key or "group_norm" in key or "tail.0" in key
        ):
            state[key] = (
                1.0 + 0.05 * torch.randn(shape, generator=gen)
                if key.endswith("weight")
                else 0.05 * torch.randn(shape, generator=gen)
            )
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[key] = (
                torch.randn(shape, generator=gen) / math.sqrt(fan_in)
                if len(shape) > 1
                else 0.05 * torch.randn(shape, generator=gen)
            )
    return state


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The official UNet's computation, written against its state dict (GroupNorm(32), eps 1e-5, Swish)."""

    def norm(p, h):
        return F.group_norm(h, 32, sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5)

    def conv(p, h, **kw):
        return F.conv2d(h, sd[f"{p}.weight"], sd[f"{p}.bias"], **kw)

    def linear(p, h):
        return F.linear(h, sd[f"{p}.weight"], sd[f"{p}.bias"])

    def attention(p, h):
        b, c, hh, ww = h.shape
        n = norm(f"{p}.group_norm", h)
        q, k, v = (conv(f"{p}.proj_{s}", n).reshape(b, c, hh * ww) for s in "qkv")
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)
        out = torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, hh, ww)
        return h + conv(f"{p}.proj", out)

    def resblock(p, h, temb):
        out = conv(f"{p}.block1.2", F.silu(norm(f"{p}.block1.0", h)), padding=1)
        out = out + linear(f"{p}.temb_proj.1", F.silu(temb))[:, :, None, None]
        out = conv(f"{p}.block2.3", F.silu(norm(f"{p}.block2.0", out)), padding=1)
        out = out + (conv(f"{p}.shortcut", h) if f"{p}.shortcut.weight" in sd else h)
        return attention(f"{p}.attn", out) if f"{p}.attn.proj.weight" in sd else out

    def count(prefix):
        return len({k.split(".")[1] for k in sd if k.startswith(prefix + ".")})

    temb = sd["time_embedding.timembedding.0.weight"][t]
    temb = linear("time_embedding.timembedding.3", F.silu(linear("time_embedding.timembedding.1", temb)))
    h = conv("head", x, padding=1)
    stack = [h]
    for k in range(count("downblocks")):
        p = f"downblocks.{k}"
        h = conv(f"{p}.main", h, stride=2, padding=1) if f"{p}.main.weight" in sd else resblock(p, h, temb)
        stack.append(h)
    h = resblock("middleblocks.1", resblock("middleblocks.0", h, temb), temb)
    for k in range(count("upblocks")):
        p = f"upblocks.{k}"
        if f"{p}.main.weight" in sd:
            h = conv(f"{p}.main", F.interpolate(h, scale_factor=2, mode="nearest"), padding=1)
        else:
            h = resblock(p, torch.cat([h, stack.pop()], dim=1), temb)
    assert not stack
    return conv("tail.2", F.silu(norm("tail.0", h)), padding=1)


def _save_ckpt(path: Path, state: dict[str, torch.Tensor]) -> Path:
    # the non-EMA weights differ (all but the frozen table), so picking the wrong one shows
    net = {k: v if k.endswith("timembedding.0.weight") else v + 1 for k, v in state.items()}
    torch.save({"net_model": net, "ema_model": state, "step": 5000, "x_T": torch.zeros(1)}, path)
    return path


def test_converted_quarter_width_model_matches_the_official_computation(tmp_path):
    state = official_state(scale=4)
    out = convert_pytorch_ddpm(_save_ckpt(tmp_path / "ckpt.pt", state), tmp_path / "out")
    model = zoo.load_pretrained(out)
    assert isinstance(model, DDPMModel)
    assert model.config.unet.block_out_channels == (32, 64, 64, 64)
    assert model.schedule.variance_type == "fixed_large" and not model.schedule.clip_sample
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for t in ([0, 999], [10, 500]):
            t = torch.tensor(t)
            expected = official_forward(state, x, t)
            assert expected.abs().mean() > 0.05
            assert (model.predict(x, t) - expected).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_full_size_checkpoint_converts_every_key_with_matching_shapes(tmp_path):
    state = official_state(scale=1)
    assert sum(v.numel() for v in state.values()) == OFFICIAL["num_params"]
    out = tmp_path / "out"
    assert zoo_main(["convert", "pytorch-ddpm", str(_save_ckpt(tmp_path / "ckpt.pt", state)), str(out)]) == 0
    converted = load_safetensors(out / "model.safetensors")
    with torch.device("meta"):
        fresh = DDPMModel(DDPMModel.read_config(out))
    assert set(converted) == set(fresh.state_dict())
    assert all(tuple(converted[k].shape) == tuple(v.shape) for k, v in fresh.state_dict().items())
    # everything but the frozen sinusoid table was consumed, nothing invented
    assert sum(v.numel() for v in converted.values()) == OFFICIAL["num_trainable_params"]
    cfg = json.loads((out / "config.json").read_text())["unet"]
    assert cfg["block_out_channels"] == [128, 256, 256, 256] and cfg["layers_per_block"] == 2
    assert cfg["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]
    assert torch.equal(converted["unet.conv_in.weight"], state["head.weight"])
    assert torch.equal(
        converted["unet.mid_block.attentions.0.to_q.weight"],
        state["middleblocks.0.attn.proj_q.weight"][:, :, 0, 0],
    )


def test_a_checkpoint_of_another_model_is_refused_and_nothing_is_written(tmp_path):
    other = UNet2D(  # a diffusers-named UNet, not pytorch-ddpm's
        {
            "block_out_channels": (32, 64),
            "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
            "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
            "sample_size": 8,
            "layers_per_block": 1,
        }
    )
    torch.save({"ema_model": other.state_dict()}, tmp_path / "other.pt")
    out = tmp_path / "out"
    with pytest.raises(WeightsError) as info:
        convert_pytorch_ddpm(tmp_path / "other.pt", out)
    message = str(info.value)
    assert "missing keys: time_embedding.timembedding.0.weight" in message
    assert "unexpected keys: conv_in.weight" in message
    assert not out.exists()


def test_a_missing_key_is_named(tmp_path):
    state = official_state(scale=4)
    del state["upblocks.9.attn.proj_k.bias"]
    with pytest.raises(WeightsError, match=r"missing keys: upblocks\.9\.attn\.proj_k\.bias"):
        convert_pytorch_ddpm(_save_ckpt(tmp_path / "ckpt.pt", state), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_net_model_is_converted_with_ema_false(tmp_path):
    state = official_state(scale=4)
    out = convert_pytorch_ddpm(_save_ckpt(tmp_path / "ckpt.pt", state), tmp_path / "out", ema=False)
    converted = load_safetensors(out / "model.safetensors")
    assert torch.equal(converted["unet.conv_out.bias"], state["tail.2.bias"] + 1)


def test_a_pytorch_ddpm_checkpoint_given_for_a_card_is_read_by_its_converter(tmp_path):
    """``zoo.load("ddpm", weights=ckpt.pt)``: the converter claims the file by its entries (the ``.pt`` could as
    well be a state dict in our names), and the result is what ``zoo convert pytorch-ddpm`` writes."""
    import warnings

    state = official_state(scale=4)
    ckpt = _save_ckpt(tmp_path / "ckpt.pt", state)
    converted = zoo.load_pretrained(convert_pytorch_ddpm(ckpt, tmp_path / "out"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the override's "checksums not checked" (tests/core/test_weights_override)
        model = zoo.load("ddpm", weights=ckpt)
    assert model.config.unet.block_out_channels == (32, 64, 64, 64)
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in converted.state_dict().items())
    torch.save({"unet.conv_in.weight": torch.zeros(1)}, tmp_path / "ours.pt")  # our names: not claimed
    from zoo_ddpm.convert import is_pytorch_ddpm

    assert is_pytorch_ddpm(ckpt) and not is_pytorch_ddpm(tmp_path / "ours.pt")
