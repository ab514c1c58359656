"""Step 4: weights. Fit the Gaussian to the digits and save it in the zoo format (this reproduces the shipped files).

python -m zoo_plugin_example.fit --out zoo_plugin_example/weights/gaussian-digits
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from zoo_plugin_example.model import GaussianDiffusionModel


def fit(rank: int = 32, image_size: int = 16) -> GaussianDiffusionModel:
    from sklearn.datasets import load_digits

    digits = (
        torch.tensor(load_digits().images, dtype=torch.float64)[:, None] / 16.0
    )  # [1797, 1, 8, 8] in [0, 1]
    x = F.interpolate(digits, size=image_size, mode="bilinear", align_corners=False) * 2 - 1
    x = x.flatten(1)
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    variances = s[:rank] ** 2 / (len(x) - 1)
    model = GaussianDiffusionModel({"image_size": image_size, "rank": rank})
    model.mean.copy_(mean)
    model.components.copy_(vh[:rank].T)
    model.variances.copy_(variances)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rank", type=int, default=32)
    args = parser.parse_args()
    path = fit(args.rank).save_pretrained(args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
