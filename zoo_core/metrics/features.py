"""Feature extractors for FID / KID / precision-recall, as torchmetrics takes them (``feature=`` an nn.Module).

Each takes images [N, C, H, W] float in [-1, 1] and returns features [N, D], and says ``num_features`` (so
torchmetrics needs no dummy forward). ``tests/metrics/test_standard.py`` plugs ``DigitFeatures`` straight into
torchmetrics' ``FrechetInceptionDistance`` and checks it gives what ``zoo eval`` gives.

- ``digits``: the 64-d penultimate layer of the digit classifier trained here (offline).
- ``shapes``: the pixel reading of the shapes evaluator as a continuous vector (offline).
- ``inception``: the standard FID Inception-v3 (pool3, 2048-d) exactly as torchmetrics loads it through
  torch-fidelity, so numbers compare with papers. Needs ``pip install 'zoo-core[inception]'``; its weights
  (pt_inception-2015-12-05, ~100 MB) download into the torch hub cache on first use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zoo_core.errors import ZooError

FEATURES = ("digits", "shapes", "inception")
INCEPTION_EXTRA = "pip install 'zoo-core[inception]'"


class DigitFeatures(nn.Module):
    """Penultimate features of the shipped digit classifier (colour images are averaged to gray)."""

    num_features = 64

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from zoo_core.metrics.digit_classifier import features

        return features(images.float())


class ShapesFeatures(nn.Module):
    """``shapes_eval.describe_image`` of each image: colours, area, position, moments, template overlaps."""

    def __init__(self) -> None:
        super().__init__()
        from zoo_core.metrics.shapes_eval import DESCRIPTOR_DIM

        self.num_features = DESCRIPTOR_DIM

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from zoo_core.metrics.shapes_eval import describe_image

        if images.ndim != 4 or images.shape[1] != 3:
            raise ZooError(
                f"--features shapes reads RGB images [N, 3, H, W], got shape {tuple(images.shape)}"
            )
        array = images.detach().float().cpu().numpy()
        return torch.from_numpy(np.stack([describe_image(a) for a in array]))


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 pool features (2048-d) through torchmetrics / torch-fidelity, on uint8 RGB."""

    num_features = 2048

    def __init__(self) -> None:
        super().__init__()
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise ZooError(
                "--features inception needs torch-fidelity (the standard FID Inception network): "
                f"{INCEPTION_EXTRA}, or use --features digits|shapes offline"
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        try:
            self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
        except Exception as exc:  # the weights download on first use; offline this is where it fails
            raise ZooError(
                f"could not load the FID Inception weights ({type(exc).__name__}: {exc}); they download once "
                "into ~/.cache/torch/hub/checkpoints (pt_inception-2015-12-05-6726825d.pth): run once with "
                "network, or copy that file there"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x).reshape(len(x), -1)


def get_extractor(name: str) -> nn.Module:
    """The feature extractor called ``name`` (one of FEATURES), in eval mode."""
    from zoo_core.errors import UnknownNameError

    classes = {"digits": DigitFeatures, "shapes": ShapesFeatures, "inception": InceptionFeatures}
    if name not in classes:
        raise UnknownNameError("feature extractor", name, classes)
    return classes[name]().eval()


def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features [N, D] (float64, CPU) of images [N, C, H, W] in [-1, 1], in batches."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(extractor(images[start : start + batch_size]).double().cpu())
    return torch.cat(out)
