"""zoo_core.nn.fir (shared with StyleGAN2) against a direct definition of upfirdn: zero-insert, pad, convolve, decimate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo_core.nn.fir import (
    conv_downsample2d,
    downsample2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
    upsample_conv2d,
)


def direct_upfirdn(
    x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: tuple[int, int, int, int]
) -> torch.Tensor:
    """Literal loops: y[i, j] = sum_{a, b} u[i*down + a, j*down + b] * f[fh-1-a, fw-1-b] over the padded upsampled u."""
    n, c, h, w = x.shape
    u = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    u[:, :, ::up, ::up] = x.double()
    x0, x1, y0, y1 = pad
    u = F.pad(u, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    u = u[:, :, max(-y0, 0) : u.shape[2] - max(-y1, 0), max(-x0, 0) : u.shape[3] - max(-x1, 0)]
    fh, fw = f.shape
    out_h, out_w = (u.shape[2] - fh) // down + 1, (u.shape[3] - fw) // down + 1
    out = torch.zeros(n, c, out_h, out_w, dtype=torch.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = u[:, :, i * down : i * down + fh, j * down : j * down + fw]
            out[:, :, i, j] = (patch * f.double().flip([0, 1])).sum(dim=(2, 3))
    return out.float()


@pytest.mark.parametrize(
    "up, down, pad",
    [
        (1, 1, (0, 0, 0, 0)),
        (2, 1, (2, 1, 2, 1)),
        (1, 2, (1, 1, 1, 1)),
        (2, 2, (1, 2, 0, 3)),
        (1, 1, (-1, 2, 1, -1)),
    ],
)
def test_upfirdn2d_matches_the_definition(up, down, pad):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    f = torch.rand(4, 3, generator=gen)  # asymmetric, so a flip bug shows
    out = upfirdn2d(x, f, up=up, down=down, padding=pad)
    torch.testing.assert_close(out, direct_upfirdn(x, f, up, down, pad), atol=1e-5, rtol=1e-5)


def test_setup_filter_normalises_and_separable_equals_2d():
    f2 = setup_filter([1, 3, 3, 1])
    assert f2.shape == (4, 4) and f2.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(
        f2, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    )
    f1 = setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(upsample2d(x, f1), upsample2d(x, f2), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(downsample2d(x, f1), downsample2d(x, f2), atol=1e-6, rtol=1e-5)


def test_resampling_keeps_constant_images_constant_and_sizes():
    f = setup_filter([1, 3, 3, 1])
    up = upsample2d(torch.ones(1, 2, 6, 6), f)
    down = downsample2d(torch.ones(1, 2, 8, 8), f)
    assert up.shape == (1, 2, 12, 12) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.ones(1, 2, 8, 8))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))


def test_fused_conv_resampling_matches_the_unfused_sequence_inside():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 3, 16, 16)
    w = torch.randn(5, 3, 3, 3)
    fused = conv_downsample2d(x, w, f)
    unfused = downsample2d(F.conv2d(x, w, padding=1), f)
    assert fused.shape == (1, 5, 8, 8)
    torch.testing.assert_close(fused[..., 2:-2, 2:-2], unfused[..., 2:-2, 2:-2], atol=1e-4, rtol=1e-4)
    assert upsample_conv2d(x, w, f).shape == (1, 5, 32, 32)
