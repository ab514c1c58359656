"""Exact resume: a run stopped after step k and resumed ends bit-identical to a run that never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import TinyTrainer, tiny_config

from zoo_core.errors import ConfigError
from zoo_core.training import checkpoint
from zoo_core.training.lr import lr_factor
from zoo_core.weights import load_safetensors


class Crash(RuntimeError):
    pass


class CrashingTrainer(TinyTrainer):
    """Dies inside the step with index ``crash_at`` (after some checkpoints were written)."""

    crash_at = -1

    def step(self, batch, state):  # type: ignore[no-untyped-def]
        if state.step == self.crash_at:
            raise Crash(f"simulated crash in step {state.step}")
        return super().step(batch, state)


def _files(ckpt: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.name: load_safetensors(p) for p in sorted(ckpt.glob("*.safetensors"))}


def _assert_identical(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == ["model.ema.safetensors", "model.safetensors", "optimizers.safetensors"]
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert sorted(fa[name]) == sorted(fb[name]), name
        for key in fa[name]:
            assert torch.equal(fa[name][key], fb[name][key]), f"{name}:{key} differs"


# dropout draws from the global torch RNG, grad_accum splits batches, warm-up + cosine depend on the step, and
# the epoch boundary (48 samples, batch 8 -> every 6 steps) is crossed: all must survive the restart.
RUN = dict(
    max_steps=9,
    checkpoint_every=2,
    dropout=0.3,
    grad_accum=2,
    warmup_steps=3,
    lr_schedule="cosine",
    weight_decay=0.01,
    grad_clip=0.5,
)


def test_resumed_run_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    whole = TinyTrainer(tiny_config(tmp_path / "whole", **RUN)).fit()
    assert whole.step == 9

    crashing = CrashingTrainer(tiny_config(tmp_path / "split", **RUN))
    crashing.crash_at = 5  # steps 0..4 done, checkpoints at 2 and 4, step 5 dies
    with pytest.raises(Crash):
        crashing.fit()
    root = tmp_path / "split" / "checkpoints"
    assert checkpoint.resolve_latest(root).name == "step-0000004"

    resumed = TinyTrainer(tiny_config(tmp_path / "split", **RUN)).fit(resume=True)
    assert resumed.step == 9
    for step in (4, 6, 8, 9):
        name = checkpoint.step_dir_name(step)
        _assert_identical(tmp_path / "whole" / "checkpoints" / name, root / name)
    # the JSON state agrees too (the RNG states after step 9, the data position, EMA counters)
    a = checkpoint.read_state(tmp_path / "whole" / "checkpoints" / "step-0000009")
    b = checkpoint.read_state(root / "step-0000009")
    for key in ("step", "rng", "data", "ema", "optimizers", "lr_factor"):
        assert a[key] == b[key], key
    assert a["data"] == {"epoch": 1, "offset": 24, "samples_seen": 72}


def test_a_run_paused_with_stop_at_and_resumed_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    TinyTrainer(tiny_config(tmp_path / "whole", **RUN)).fit()
    paused = TinyTrainer(tiny_config(tmp_path / "split", stop_at=5, **RUN)).fit()
    root = tmp_path / "split" / "checkpoints"
    assert paused.step == 5
    assert checkpoint.resolve_latest(root).name == "step-0000005"  # the pause is checkpointed
    # the schedule spans max_steps, not the pause: a third of the way down the cosine, not at its floor (0)
    expected = lr_factor(5, max_steps=9, warmup_steps=3, schedule="cosine")
    assert checkpoint.read_state(root / "step-0000005")["lr_factor"] == pytest.approx(expected)
    assert expected == pytest.approx(0.75)
    resumed = TinyTrainer(tiny_config(tmp_path / "split", **RUN)).fit(resume=True)
    assert resumed.step == 9
    _assert_identical(tmp_path / "whole" / "checkpoints" / "step-0000009", root / "step-0000009")


def test_stop_at_past_max_steps_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="stop_at 12 is past max_steps 9"):
        tiny_config(tmp_path, stop_at=12, **RUN)


def test_metrics_after_resume_continue_the_log_without_duplicates(tmp_path):
    whole = tmp_path / "whole"
    TinyTrainer(tiny_config(whole, **RUN)).fit()
    crashing = CrashingTrainer(tiny_config(tmp_path / "split", **RUN))
    crashing.crash_at = 5
    with pytest.raises(Crash):
        crashing.fit()
    TinyTrainer(tiny_config(tmp_path / "split", **RUN)).fit(resume=True)

    def rows(d: Path) -> list[dict]:
        return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]

    a, b = rows(whole), rows(tmp_path / "split")
    assert [r["step"] for r in b] == list(range(1, 10))
    for ra, rb in zip(a, b, strict=True):
        assert ra["loss"] == rb["loss"] and ra["lr"] == rb["lr"]


def test_resume_from_an_explicit_checkpoint_directory(tmp_path):
    run = tiny_config(tmp_path / "a", max_steps=4, checkpoint_every=2)
    TinyTrainer(run).fit()
    # continue from step 2 of run a into a new directory
    state = TinyTrainer(tiny_config(tmp_path / "b", max_steps=4, checkpoint_every=2)).fit(
        resume=tmp_path / "a" / "checkpoints" / "step-0000002"
    )
    assert state.step == 4
    _assert_identical(
        tmp_path / "a" / "checkpoints" / "step-0000004", tmp_path / "b" / "checkpoints" / "step-0000004"
    )


def test_starting_over_an_existing_run_without_resume_is_an_error(tmp_path):
    TinyTrainer(tiny_config(tmp_path, max_steps=2)).fit()
    with pytest.raises(ConfigError, match="already holds checkpoints.*resume"):
        TinyTrainer(tiny_config(tmp_path, max_steps=4)).fit()


def test_resume_true_without_checkpoints_starts_fresh_and_can_extend_a_finished_run(tmp_path):
    state = TinyTrainer(tiny_config(tmp_path, max_steps=2)).fit(resume=True)
    assert state.step == 2
    state = TinyTrainer(tiny_config(tmp_path, max_steps=4)).fit(resume=True)
    assert state.step == 4
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == [2, 4]


def test_resume_with_a_changed_learning_rate_uses_the_new_rate(tmp_path):
    """The optimizers' saved state must not override the config: a longer run at a new rate says so and uses it."""
    TinyTrainer(tiny_config(tmp_path, max_steps=4, lr=1e-2)).fit()
    with pytest.warns(UserWarning, match=r"lr: 0\.01 -> 0\.003"):
        TinyTrainer(tiny_config(tmp_path, max_steps=6, lr=3e-3)).fit(resume=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == [1e-2] * 4 + [3e-3] * 2
