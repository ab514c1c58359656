from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("sklearn")

from metric_toys import DigitPicker  # noqa: E402

from zoo_core.data.digits import DigitsDataset  # noqa: E402
from zoo_core.metrics import digits_eval  # noqa: E402
from zoo_core.metrics.digits_eval import classifier_score, evaluate_digit_samples  # noqa: E402


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


@pytest.fixture
def toys(registry):
    from metric_toys import ToyPlugin

    registry.register_plugin(ToyPlugin(), name="metric-toys")
    yield
    registry.unregister_plugin("metric-toys")


def test_conditional_detection():
    assert digits_eval.is_class_conditional(DigitPicker({"num_classes": 10}))
    assert not digits_eval.is_class_conditional(DigitPicker())


def test_cli_samples_a_registered_model(toys, tmp_path, capsys):
    out = tmp_path / "toy.json"
    assert digits_eval.main(["toy-digits", "--n", "200", "--batch-size", "64", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "toy-digits" and result["sampler"] == "gan" and result["nfe_per_image"] == 1.0
    assert result["n"] == 200 and "conditional_accuracy" not in result
    assert result["confident_share"] > 0.9 and result["class_coverage"] == 10
    # real digits drawn with replacement; only 200 of them, so the estimate carries a larger bias than 359 vs 1438
    assert result["frechet_distance"] < 5 * result["real_baseline_frechet"]


def test_cli_requests_labels_from_a_class_conditional_model(toys, tmp_path):
    out = tmp_path / "cond.json"
    assert digits_eval.main(["toy-digits-cond", "--n", "100", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["conditional_accuracy"] > 0.95 and result["class_histogram"][0] >= 9
    out2 = tmp_path / "uncond.json"
    digits_eval.main(["toy-digits-cond", "--n", "20", "--no-conditional", "--json", str(out2)])
    assert "conditional_accuracy" not in json.loads(out2.read_text())


def test_cli_on_real_digits_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert digits_eval.main(["--real", "--json", str(out), "--grid", str(tmp_path / "grid.png")]) == 0
    printed = capsys.readouterr().out
    assert "frechet_distance" in printed.splitlines()[3]
    result = json.loads(out.read_text())
    assert result["n"] == 359 and result["class_coverage"] == 10
    assert (tmp_path / "grid.png").stat().st_size > 0
