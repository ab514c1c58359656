"""FIR resampling (upfirdn2d) in plain PyTorch: upsample by zero insertion, pad, filter, downsample.

StyleGAN2 (Karras et al. 2020) and NCSN++ (Song et al. 2021, used by DDGAN) resample feature maps with a small
low-pass FIR filter, [1, 3, 3, 1] by default, instead of nearest/bilinear interpolation. The official code ships
CUDA kernels with a reference PyTorch fallback; this module is the reference algorithm only (no compiled ops), so
it runs on every device and supports gradients of any order.

Conventions follow the StyleGAN2-ADA ``upfirdn2d`` API so both families share it:

- a filter is 1-D (separable, applied along x then y) or 2-D; ``setup_filter`` turns a list such as
  ``[1, 3, 3, 1]`` into a normalised tensor (outer product unless it is long enough to be worth separating);
- ``padding`` is an int, ``[px, py]`` or ``[x0, x1, y0, y1]``; negative values crop;
- the filter is convolved (flipped), unless ``flip_filter`` asks for correlation; for the symmetric filters in
  use both give the same result;
- ``gain`` scales the output: an upsampling by ``s`` needs ``gain = s**2`` to keep constant images constant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

FilterLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]] | float | None
Padding = int | Sequence[int]


def setup_filter(
    f: FilterLike,
    *,
    device: torch.device | str | None = None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> torch.Tensor:
    """A float32 FIR filter tensor from a list: 1-D (separable) or 2-D, normalised to sum 1 by default.

    ``separable=None`` keeps 1-D filters of 8 taps or more separable and expands shorter ones to their outer
    product (a 4x4 filter is cheaper as one depthwise conv than two).
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2):
        raise ValueError(f"an FIR filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"{what} must be an int or [x, y], got {value!r}")
    return int(value[0]), int(value[1])


def _padding(padding: Padding) -> tuple[int, int, int, int]:
    """int | [px, py] | [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding[0], padding[1], padding[2], padding[3]
    raise ValueError(f"padding must be an int, [px, py] or [x0, x1, y0, y1], got {padding!r}")


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop), convolve each channel with ``f``, then keep every ``down``-th pixel.

    ``x`` is [N, C, H, W]; ``f`` a 1-D (separable) or 2-D filter from ``setup_filter`` (None: identity).
    Output size: ``(H * up_y + y0 + y1 - fh) // down_y + 1`` (likewise for W).
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    x0, x1, y0, y1 = _padding(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:  # zero insertion: each pixel followed by up-1 zeros along each axis
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]

    f = f.to(device=x.device, dtype=x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # convolution, not correlation
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        weight = f[None, None].expand(c, 1, *f.shape)
        x = F.conv2d(x, weight, groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), groups=c)
    return x[:, :, ::downy, ::downx]


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int | Sequence[int] = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """FIR upsampling by ``up`` that keeps the image centred and constant images constant ([N,C,H,W] -> [N,C,H*up,W*up])."""
    upx, upy = _pair(up, "up")
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    down: int | Sequence[int] = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """FIR downsampling by ``down``: low-pass filter, then decimate ([N,C,H,W] -> [N,C,H/down,W/down])."""
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = _filter_size(f)
    pad = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain)


def conv_downsample2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor | None,
    *,
    down: int = 2,
    gain: float = 1.0,
) -> torch.Tensor:
    """A KxK convolution followed by FIR downsampling, fused (StyleGAN2): pad once, filter, then a strided conv.

    Away from the borders this equals ``downsample2d(conv2d(x, weight, padding=K//2), f)``; it is cheaper (the conv
    runs at the low resolution) and zero-pads the input once instead of padding both steps, as the official code does.
    """
    kh, kw = weight.shape[-2:]
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"conv_downsample2d needs an odd square kernel, got {kh}x{kw}")
    fw, _ = _filter_size(f)
    p = (fw - down) + (kw - 1)
    x = upfirdn2d(x, f, padding=[(p + 1) // 2, p // 2, (p + 1) // 2, p // 2], gain=gain)
    return F.conv2d(x, weight, stride=down)


def upsample_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 2,
    gain: float = 1.0,
) -> torch.Tensor:
    """FIR upsampling followed by a KxK convolution with 'same' padding ([N,C,H,W] -> [N,O,H*up,W*up])."""
    kh, kw = weight.shape[-2:]
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"upsample_conv2d needs an odd square kernel, got {kh}x{kw}")
    x = upsample2d(x, f, up=up, gain=gain)
    return F.conv2d(x, weight, padding=kw // 2)
