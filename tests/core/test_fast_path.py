"""dtype="auto": the fast path is chosen from the hardware (bf16 autocast only where bf16 is native)."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo_core import hardware
from zoo_core.hardware import choose_fast_path, cpu_flags, cpu_native_bf16


def test_native_bf16_cpu_gets_bf16_autocast_and_avx2_gets_channels_last_fp32():
    native = choose_fast_path("cpu", flags={"avx2", "avx512f", "avx512_bf16"})
    assert native.autocast_dtype is torch.bfloat16 and native.channels_last
    assert native.label == "bfloat16 autocast + channels_last" and "native bf16" in native.reason
    emulated = choose_fast_path("cpu", flags={"avx2", "fma"})
    assert emulated.autocast_dtype is None and emulated.channels_last
    assert emulated.label == "fp32 + channels_last"
    assert torch.backends.cpu.get_cpu_capability() in emulated.reason and "slower" in emulated.reason
    assert choose_fast_path("cpu", flags={"amx_bf16"}).autocast_dtype is torch.bfloat16


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\nprocessor\t: 1\n"
    )
    flags = cpu_flags(cpuinfo)
    assert {"avx2", "avx512_bf16"} <= flags and cpu_native_bf16(flags)
    assert cpu_flags(tmp_path / "missing") == set()


def test_dtype_auto_keeps_fp32_weights_in_channels_last_and_says_what_it_chose(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda flags=None: False)
    model = zoo.load("ddpm", dtype="auto")
    assert model.fast_path is not None and model.fast_path.label == "fp32 + channels_last"
    assert model.dtype == torch.float32
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    reference = zoo.load("ddpm").sample(4, seed=0, sampler="ddim", steps=5)
    fast = model.sample(4, seed=0, sampler="ddim", steps=5)
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=0)  # the same maths in another memory order


def test_dtype_auto_with_native_bf16_runs_autocast_and_stays_close(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda flags=None: True)
    model = zoo.load("ddpm", dtype="auto")
    assert model.fast_path.autocast_dtype is torch.bfloat16 and model.dtype == torch.float32
    reference = zoo.load("ddpm").sample(4, seed=0, sampler="ddim", steps=5)
    fast = model.sample(4, seed=0, sampler="ddim", steps=5)
    assert fast.dtype == torch.float32
    assert not torch.equal(fast, reference)  # the network really ran in bf16
    assert (fast - reference).abs().mean() < 0.02  # measured 2.6e-3 at 20 steps on the 16x16 digits model
    torch.testing.assert_close(model.sample(4, seed=0, sampler="ddim", steps=5), fast, atol=0, rtol=0)


def test_unknown_dtype_names_auto():
    with pytest.raises(ValueError, match="'auto' for the hardware's fast path"):
        zoo.load("ddpm", dtype="fp8")
