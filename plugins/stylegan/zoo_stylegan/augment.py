"""Differentiable discriminator augmentation for GANs trained on little data.

- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the same random
  colour / translation / cutout transform is applied to real and fake images before D, and since every op is
  differentiable G still receives gradients through it.
- Adaptive augmentation (Karras et al. 2020, StyleGAN2-ADA, section 3): each op is applied to each image with
  probability p, and p is tuned during training from the overfitting heuristic r_t = E[sign(D(x_real))]: if r_t is
  above the target 0.6, D is too sure about the reals (overfitting) and p rises, otherwise it falls, by
  ``batch_size * interval / (ada_kimg * 1000)`` per adjustment (the official schedule: every 4 steps, one unit per
  500 kimg).

Randomness comes in through ``rand(*shape) -> [B, *shape]`` uniform draws (``Batch.rand`` of the core's training
loop fits), so augmentations are reproducible and independent of how a batch is split over processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

#: ``rand(*shape)``: uniform [0, 1) draws of shape [B, *shape] for a batch of B images.
RandFn = Callable[..., torch.Tensor]

POLICIES = ("color", "translation", "cutout")


def torch_rand(
    n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> RandFn:
    """A ``RandFn`` over a torch generator (outside the training loop: tests, notebooks)."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand((n, *shape), generator=generator).to(device)

    return rand


def _where(apply: torch.Tensor, augmented: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.where(apply.reshape(-1, 1, 1, 1), augmented, x)


def color(x: torch.Tensor, rand: RandFn) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5), as in DiffAugment."""
    x = x + (rand(1, 1, 1).to(x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand(1, 1, 1).to(x.dtype) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (rand(1, 1, 1).to(x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, rand: RandFn, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y (integer pixels), filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (rand(1).reshape(n, 1, 1) * (2 * sh + 1)).floor().long() - sh
    dx = (rand(1).reshape(n, 1, 1) * (2 * sw + 1)).floor().long() - sw
    ys = torch.arange(h, device=x.device).reshape(1, h, 1) - dy.to(x.device)  # source row of each output row
    xs = torch.arange(w, device=x.device).reshape(1, 1, w) - dx.to(x.device)
    valid = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)  # [n, h, w]
    index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
    out = x.reshape(n, x.shape[1], h * w).gather(2, index).reshape_as(x)
    return out * valid.unsqueeze(1).to(x.dtype)


def cutout(x: torch.Tensor, rand: RandFn, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (
        (rand(1).reshape(n, 1, 1) * (h + (1 - ch % 2))).floor().long()
    )  # square centre, as DiffAugment draws it
    cx = (rand(1).reshape(n, 1, 1) * (w + (1 - cw % 2))).floor().long()
    ys = torch.arange(h).reshape(1, h, 1)
    xs = torch.arange(w).reshape(1, 1, w)
    inside = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(device=x.device, dtype=x.dtype)


OPS: dict[str, Callable[[torch.Tensor, RandFn], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    names = tuple(p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip())
    unknown = [p for p in names if p not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(
    x: torch.Tensor, rand: RandFn, policy: str | Sequence[str] = POLICIES, p: float = 1.0
) -> torch.Tensor:
    """Apply each op of ``policy`` to each image with probability ``p`` (p=1: DiffAugment; p<1: ADA-style)."""
    for name in parse_policy(policy):
        if p <= 0:
            break
        augmented = OPS[name](x, rand)
        x = augmented if p >= 1 else _where(rand(1).reshape(-1).to(x.device) < p, augmented, x)
    return x


class AugmentPipe(nn.Module):
    """Augmentation with a probability ``p`` kept as a buffer (so it is checkpointed with the training state)."""

    def __init__(self, policy: str | Sequence[str] = POLICIES, p: float = 0.0) -> None:
        super().__init__()
        self.policy = parse_policy(policy)
        self.register_buffer("p", torch.tensor(float(p)))

    def forward(self, x: torch.Tensor, rand: RandFn) -> torch.Tensor:
        return diff_augment(x, rand, self.policy, float(self.p))

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)}, p={float(self.p):.4f}"


class AdaptiveAugment:
    """The ADA controller: collects sign(D(real)) and every ``interval`` steps moves ``pipe.p`` toward r_t = target.

    p += sign(r_t - target) * batch_size * interval / (ada_kimg * 1000), floored at 0 as in the official code (an
    op applies with probability min(p, 1)).
    """

    def __init__(
        self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0
    ) -> None:
        if not 0 < target < 1:
            raise ValueError(f"the ADA target r_t must be in (0, 1), got {target}")
        if interval < 1 or ada_kimg <= 0:
            raise ValueError("interval must be >= 1 and ada_kimg > 0")
        self.pipe, self.target, self.interval, self.ada_kimg = pipe, target, interval, ada_kimg
        self._sign_sum = 0.0
        self._count = 0
        self._steps = 0
        self.last_rt: float | None = None

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record the discriminator's logits on (augmented) real images of one step."""
        signs = real_logits.detach().sign().float()
        self._sign_sum += float(signs.sum())
        self._count += signs.numel()

    def step(
        self, batch_size: int, reduce: Callable[[dict[str, float]], dict[str, float]] | None = None
    ) -> float:
        """Call once per training step (after ``accumulate``); adjusts p every ``interval`` steps. Returns p.

        ``reduce`` combines the collected sums over processes (e.g. a mean over a process group), so every
        process moves p by the same amount from the global r_t.
        """
        self._steps += 1
        if self._steps % self.interval != 0:
            return float(self.pipe.p)
        totals = {"sign_sum": self._sign_sum, "count": float(self._count)}
        if reduce is not None:
            totals = reduce(totals)
        if totals["count"] > 0:
            rt = totals["sign_sum"] / totals["count"]
            adjust = (
                float(torch.sign(torch.tensor(rt - self.target)))
                * batch_size
                * self.interval
                / (self.ada_kimg * 1000)
            )
            with torch.no_grad():
                self.pipe.p.copy_((self.pipe.p + adjust).clamp(min=0))
            self.last_rt = rt
            self._sign_sum, self._count = 0.0, 0
        return float(self.pipe.p)

    def state_dict(self) -> dict[str, float | int | None]:
        return {
            "sign_sum": self._sign_sum,
            "count": self._count,
            "steps": self._steps,
            "last_rt": self.last_rt,
        }

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self._sign_sum = float(state["sign_sum"] or 0.0)
        self._count = int(state["count"] or 0)
        self._steps = int(state["steps"] or 0)
        self.last_rt = state["last_rt"]  # type: ignore[assignment]
