"""A small CNN that recognises the real handwritten digits at 16x16: the feature extractor of the digits metrics.

It plays the role Inception plays for FID, on data we have offline: ``features`` (the 64-d penultimate layer)
feed the Frechet distance, ``predict_proba`` the confidence, coverage and conditional-accuracy figures. Images of
another size are resized to 16x16 first (bilinear, anti-aliased).

Training adds outlier exposure (Hendrycks et al., 2019): pixel noise and random blobs are pushed toward the
uniform distribution, so the confidence figure separates legible digits (98.6% of real test digits above 0.9)
from junk (0% of uniform noise) instead of being near 1 for anything.

The shipped weights (``weights/digit_classifier.safetensors``, 0.2 MB) are trained deterministically (one
thread, seed 0; ~1 min on a CPU) on the train split of ``zoo_core.data.digits`` (20% held out per class) by:

    python -m zoo_core.metrics.digit_classifier --train --out zoo_core/metrics/weights/digit_classifier.safetensors

Test-split accuracy: 0.9944 (357 of 359), stored in the file's metadata with the command;
``python -m zoo_core.metrics.digit_classifier`` re-measures it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 16
FEATURE_DIM = 64
NUM_CLASSES = 10
WEIGHTS_PATH = Path(__file__).parent / "weights" / "digit_classifier.safetensors"
TRAIN_COMMAND = "python -m zoo_core.metrics.digit_classifier --train --out zoo_core/metrics/weights/digit_classifier.safetensors"


class DigitClassifier(nn.Module):
    """conv16-conv16-pool-conv32-conv32-pool-fc64-fc10 on 1x16x16 images in [-1, 1] (50k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 4 * 4, FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, 64] of images [N, 1, 16, 16]."""
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [N, 10]."""
        return self.head(self.dropout(self.features(x)))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Images [N, C, H, W] in [-1, 1] (C = 1, or 3 averaged to gray) -> float32 [N, 1, 16, 16]."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected digit images [N, 1, H, W] in [-1, 1], got shape {tuple(images.shape)}")
    x = images.detach().float().clamp(-1, 1)
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


def load_digit_classifier(
    path: str | Path = WEIGHTS_PATH, device: torch.device | str | None = None
) -> DigitClassifier:
    """The shipped classifier (or one saved at ``path``), in eval mode."""
    from zoo_core.weights import load_safetensors, load_state_dict_checked

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No digit classifier weights at {path}; reproduce them with: {TRAIN_COMMAND}"
        )
    model = DigitClassifier()
    load_state_dict_checked(model, load_safetensors(path), str(path))
    return model.to(device or "cpu").eval()


@lru_cache(maxsize=1)
def _shipped() -> DigitClassifier:
    """The shipped classifier, loaded once per process (never trained or modified after loading)."""
    model = load_digit_classifier()
    model.requires_grad_(False)
    return model


def _run(
    images: torch.Tensor, model: DigitClassifier | None, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    model = model or _shipped()
    device = next(model.parameters()).device
    feats, logits = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = prepare(images[start : start + batch_size]).to(device)
            f = model.features(x)
            feats.append(f.cpu())
            logits.append(model.head(f).cpu())
    return torch.cat(feats), torch.cat(logits)


def features(
    images: torch.Tensor, model: DigitClassifier | None = None, batch_size: int = 500
) -> torch.Tensor:
    """Penultimate-layer features [N, 64] of digit images [N, 1, H, W] in [-1, 1]."""
    return _run(images, model, batch_size)[0]


def predict_proba(
    images: torch.Tensor, model: DigitClassifier | None = None, batch_size: int = 500
) -> torch.Tensor:
    """Class probabilities [N, 10] of digit images [N, 1, H, W] in [-1, 1]."""
    return _run(images, model, batch_size)[1].softmax(dim=1)


def features_and_proba(
    images: torch.Tensor, model: DigitClassifier | None = None, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both at once, in one pass: (features [N, 64], probabilities [N, 10])."""
    f, logits = _run(images, model, batch_size)
    return f, logits.softmax(dim=1)


# -- training ---------------------------------------------------------------------------------------------------
def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random small affine warps (rotation +-12 deg, scale 0.9-1.1, shift +-1.5 px at 16 px) of [N, 1, H, W]."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1.5 * 2 / SIZE)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # pad with the background value (-1), not zero (mid gray)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


OUTLIERS_PER_BATCH = 16
OUTLIER_WEIGHT = 0.5


def random_junk(n: int, generator: torch.Generator) -> torch.Tensor:
    """Images that are not digits, for outlier exposure (Hendrycks et al. 2019): pixel noise and smooth blobs.

    Half are i.i.d. uniform pixels, half are 4x4 or 8x8 uniform noise upsampled (blobs and strokes at digit scale).
    """
    half = n // 2
    pixels = torch.rand(half, 1, SIZE, SIZE, generator=generator) * 2 - 1
    coarse = torch.rand(n - half, 1, 8, 8, generator=generator)
    coarse[: (n - half) // 2] = F.interpolate(
        coarse[: (n - half) // 2, :, :4, :4], size=(8, 8), mode="nearest"
    )
    blobs = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    # threshold-stretch so blobs are mostly background with bright patches, like digits
    blobs = ((blobs - 0.5) * 3).clamp(0, 1) * 2 - 1
    return torch.cat([pixels, blobs])


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict_proba(images, model).argmax(1) == labels).float().mean())


def train(
    epochs: int = 40, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, log: bool = True
) -> tuple[DigitClassifier, dict[str, float]]:
    """Train on the digits train split (16 px) and measure on the test split; deterministic for a given seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float summation order, hence the same weights, everywhere
    try:
        return _train(epochs, batch_size, lr, seed, log)
    finally:
        torch.set_num_threads(threads)


def _train(
    epochs: int, batch_size: int, lr: float, seed: int, log: bool
) -> tuple[DigitClassifier, dict[str, float]]:
    from zoo_core.data.digits import DigitsDataset

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = DigitsDataset(SIZE, "train").as_tensors()
    x_test, y_test = DigitsDataset(SIZE, "test").as_tensors()
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x = augment(x_train[idx], generator)
            junk = random_junk(OUTLIERS_PER_BATCH, generator)
            logits = model(torch.cat([x, junk]))
            # outlier exposure: digits to their labels, junk to the uniform distribution (low confidence)
            loss = F.cross_entropy(logits[: len(x)], y_train[idx])
            loss = loss - OUTLIER_WEIGHT * logits[len(x) :].log_softmax(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if log and (epoch + 1) % 10 == 0:
            model.eval()
            print(
                f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(model, x_test, y_test):.4f}"
            )
    model.eval()
    figures = {
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "n_test": len(y_test),
        "seconds": time.perf_counter() - start,
    }
    return model, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_core.metrics.digit_classifier",
        description="Train the digits classifier, or measure the shipped one on the test split.",
    )
    parser.add_argument("--train", action="store_true", help="train from scratch (deterministic)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to save the trained weights (.safetensors)"
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--weights", type=Path, default=WEIGHTS_PATH, help="weights to measure (without --train)"
    )
    args = parser.parse_args(argv)
    if args.train:
        model, figures = train(epochs=args.epochs, seed=args.seed)
        if args.out is not None:
            from zoo_core.weights import save_safetensors

            metadata = {
                "format": "pt",
                "command": "python -m zoo_core.metrics.digit_classifier --train "
                f"--epochs {args.epochs} --seed {args.seed} --out {args.out}",
                "test_accuracy": f"{figures['test_accuracy']:.4f}",
                "n_test": str(figures["n_test"]),
            }
            save_safetensors(model.state_dict(), args.out, metadata=metadata)
            print(f"saved {args.out}")
    else:
        from zoo_core.data.digits import DigitsDataset

        x_test, y_test = DigitsDataset(SIZE, "test").as_tensors()
        model = load_digit_classifier(args.weights)
        figures = {"test_accuracy": accuracy(model, x_test, y_test), "n_test": len(y_test)}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
