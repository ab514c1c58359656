"""StyleGAN2 building blocks: equalized-learning-rate layers, fused bias + activation, modulated convolution.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958), and the PyTorch
code of StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch, ``training/networks.py`` and ``torch_utils/ops``), whose
parameter and buffer names these layers keep so that official weights load unchanged. Weights are stored at unit
scale and multiplied by He's constant at run time ("equalized learning rate"); resampling uses FIR filters
(``zoo_core.nn.fir``) instead of strided or transposed convolutions alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.nn.fir import setup_filter, upfirdn2d

# name -> (function(x, alpha), default alpha, default gain). The gain keeps the activations' second moment at one.
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float, float]] = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    return ACTIVATIONS[act][2]


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``: the official fused op, in plain PyTorch. ``gain`` defaults to the act's own."""
    func, default_alpha, default_gain = ACTIVATIONS[act]
    if b is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + b.to(x.dtype).reshape(shape)
    x = func(x, default_alpha if alpha is None else alpha)
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the "pixel norm" of the mapping network's inputs)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 2-D filter (taps of a 1-D one); (1, 1) for None."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d (correlation) or, with ``flip_weight=False``, a true convolution; optionally transposed."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolution with FIR up- or downsampling; ``padding`` is relative to the upsampled image, applied once.

    Up: a stride-``up`` transposed convolution followed by the FIR filter, so the weights run at the low resolution.
    Down: the FIR filter then a strided convolution (a 1x1 kernel downsamples first, it commutes).
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # A transposed convolution wants the weight as [in, out/groups, kh, kw] per group.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(
            x, w, stride=up, padding=(pyt, pxt), groups=groups, transpose=True, flip_weight=not flip_weight
        )
        pad = [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]
        x = upfirdn2d(x, f, padding=pad, gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution (paper eq. 1-3): w'_ijk = s_i w_ijk, then w'' = w' / sqrt(sum w'^2 + eps).

    Demodulation restores unit output variance for unit-variance input, replacing AdaIN's instance norm (and its
    droplet artifacts). ``fused_modconv`` runs one grouped convolution with per-sample weights; otherwise the
    styles scale the activations before and the demodulation coefficients after a shared convolution (same result).
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:  # keep the products representable in fp16
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate and w is not None:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    elif demodulate:
        # the same sum without the [N, O, I, k, k] tensor: sum_ik (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2, a
        # matrix product (training, where the non-fused path runs, is several times faster on CPU)
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).T + 1e-8).rsqrt()  # [N, O]
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), resample_filter, up, down, padding, flip_weight=flip_weight
        )
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if dcoefs is not None:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x, w.to(x.dtype), resample_filter, up, down, padding, groups=batch, flip_weight=flip_weight
    )
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class FullyConnectedLayer(nn.Module):
    """A linear layer with equalized learning rate: weights N(0, 1/lr_mul^2), scaled by lr_mul / sqrt(fan_in)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        # mul_ rather than "/": on the meta device a division pulls in torch._dynamo (seconds of import time)
        self.weight = nn.Parameter(torch.randn(out_features, in_features).mul_(1 / lr_multiplier))
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """A convolution with equalized learning rate, FIR up/downsampling, bias + activation and optional clamp.

    ``trainable=False`` stores weight and bias as buffers (Freeze-D) under the same names.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter), device="cpu"))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_gain(activation)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size).to(
            memory_format=memory_format
        )
        bias_value = torch.zeros(out_channels) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_value) if bias_value is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(
            x, w, self.resample_filter, self.up, self.down, self.padding, flip_weight=self.up == 1
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, up={self.up}, down={self.down}, activation={self.activation}"
