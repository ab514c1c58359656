"""The metrics log averages each metric over the steps that reported it."""

from __future__ import annotations

from zoo_core.training.loop import _Window


def test_sparse_metric_is_not_diluted_by_steps_without_it():
    window = _Window()
    for step in range(32):
        metrics = {"loss": float(step)}
        if step % 16 == 0:  # a lazy regulariser reports every 16th step only
            metrics["r1"] = 2.0
        window.add(metrics)
    means, steps, _ = window.flush()
    assert steps == 32
    assert means == {"loss": sum(range(32)) / 32, "r1": 2.0}
    assert window.flush()[:2] == ({}, 0)
