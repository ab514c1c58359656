from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
import torch

pytest.importorskip("sklearn")

from zoo_core.config import Config  # noqa: E402
from zoo_core.data.digits import DigitsDataset  # noqa: E402
from zoo_core.metrics import digits_eval  # noqa: E402
from zoo_core.metrics.digits_eval import (  # noqa: E402
    classifier_score,
    count_network_evaluations,
    evaluate_digit_samples,
    sample_model,
)
from zoo_core.model import Model  # noqa: E402


def test_real_digits_are_confident_cover_every_class_and_sit_at_the_baseline():
    test = DigitsDataset(16, "test")
    result = evaluate_digit_samples(test.images, test.labels, reference="train")
    assert result["confident_share"] > 0.95
    assert result["class_coverage"] == 10 and sum(result["class_histogram"]) == 359
    assert result["classifier_score"] > 9.5
    assert result["conditional_accuracy"] > 0.98
    assert result["frechet_distance"] == pytest.approx(result["real_baseline_frechet"])  # same two sets
    assert result["frechet_distance"] < 20
    shifted = evaluate_digit_samples(test.images, (test.labels + 1) % 10)
    assert shifted["conditional_accuracy"] < 0.05


def test_real_digits_at_32px_match_a_32px_reference():
    test = DigitsDataset(32, "test")
    result = evaluate_digit_samples(test.images)
    assert result["size"] == 32 and result["confident_share"] > 0.95 and result["frechet_distance"] < 20


def test_noise_is_illegible_and_far_from_the_digits():
    noise = torch.rand(300, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    result = evaluate_digit_samples(noise)
    assert result["confident_share"] < 0.05
    assert result["class_coverage"] <= 3
    assert result["frechet_distance"] > 50 * result["real_baseline_frechet"]


def test_a_single_class_is_one_mode():
    test = DigitsDataset(16, "test")
    threes = test.images[test.labels == 3]
    result = evaluate_digit_samples(threes)
    assert result["class_coverage"] == 1 and result["classifier_score"] < 1.5
    assert result["frechet_distance"] > 20 * result["real_baseline_frechet"]


def test_classifier_score_bounds():
    assert classifier_score(torch.eye(10)) == pytest.approx(10.0)
    assert classifier_score(torch.full((5, 10), 0.1)) == pytest.approx(1.0)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="one-channel"):
        evaluate_digit_samples(torch.zeros(4, 3, 16, 16))
    with pytest.raises(ValueError, match="one label per image"):
        evaluate_digit_samples(torch.zeros(4, 1, 16, 16), [1, 2])


class _PickerConfig(Config):
    num_classes: int = 0


class DigitPicker(Model):
    """A 'generator' that returns real digit i for a latent z whose first coordinate falls in bin i."""

    architecture: ClassVar[str] = "test.digit-picker"
    config_class = _PickerConfig
    kind = "gan"
    default_sampler = "gan"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.register_buffer("bank", DigitsDataset(16, "all").images[:100].clone())
        self.calls = 0

    @property
    def latent_shape(self) -> tuple[int]:
        return (4,)

    def prepare_conditioning(self, n: int, labels: Any = None) -> tuple[Any, Any]:
        return labels, self

    def generate(self, z: torch.Tensor, cond: Any = None, **options: Any) -> torch.Tensor:
        self.calls += 1
        index = (torch.special.ndtr(z[:, 0]) * len(self.bank)).long().clamp(0, len(self.bank) - 1)
        return self.bank[index]


def test_sampling_uses_per_image_seeds_and_counts_network_evaluations():
    model = DigitPicker()
    a, info = sample_model(model, 10, batch_size=4, seed=5)
    b, _ = sample_model(model, 10, batch_size=10, seed=5)
    assert a.shape == (10, 1, 16, 16) and torch.equal(a, b)
    assert info["nfe_per_image"] == 1.0 and info["images_per_second"] > 0
    assert model.calls == 4  # 3 batches, then 1; the counting wrapper was removed afterwards
    assert "generate" not in model.__dict__
    c, _ = sample_model(model, 3, seed=6)
    torch.testing.assert_close(c[:2], a[1:3])


def test_counting_restores_an_instance_override():
    model = DigitPicker()
    marker = lambda z, cond=None, **kw: model.bank[:1].expand(len(z), -1, -1, -1)  # noqa: E731
    model.generate = marker
    with count_network_evaluations(model) as counter:
        model.generate(torch.zeros(2, 4))
        model.generate(torch.zeros(2, 4))
    assert counter[0] == 2 and model.generate is marker


def test_conditional_detection():
    assert digits_eval.is_class_conditional(DigitPicker({"num_classes": 10}))
    assert not digits_eval.is_class_conditional(DigitPicker())


def test_cli_on_real_digits_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert digits_eval.main(["--real", "--json", str(out), "--grid", str(tmp_path / "grid.png")]) == 0
    printed = capsys.readouterr().out
    assert "frechet_distance" in printed.splitlines()[3]
    result = json.loads(out.read_text())
    assert result["n"] == 359 and result["class_coverage"] == 10
    assert (tmp_path / "grid.png").stat().st_size > 0
