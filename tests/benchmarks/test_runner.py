"""The peer benchmark runner: a 3-repeat smoke run of every row at tiny sizes, its checks, and the README table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `benchmarks` is a folder of the repository, not an installed package

from benchmarks.__main__ import main, run_rows  # noqa: E402
from benchmarks.report import END, START, write_readme  # noqa: E402
from benchmarks.rows import ROWS  # noqa: E402
from benchmarks.timing import interleave  # noqa: E402


def test_interleave_alternates_the_order_and_reports_medians():
    calls: list[str] = []
    cases = {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}
    timings, outputs = interleave(cases, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then forward / backward / forward
    assert outputs == {"a": 1, "b": 2}
    assert all(t.repeats == 3 and t.wall_min_s <= t.wall_s <= t.wall_max_s for t in timings.values())
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        interleave(cases, repeats=0)


def test_a_row_whose_outputs_disagree_fails():
    import torch

    from benchmarks.rows import _agree, _max_abs

    figures = {"max_abs_diff_vs_diffusers": _max_abs(torch.zeros(2), torch.ones(2))}
    with pytest.raises(AssertionError, match="ours and the peer disagree"):
        _agree(figures, "max_abs_diff_vs_diffusers", 1e-4)


@pytest.mark.slow
def test_every_row_runs_at_tiny_size_and_agrees_with_its_peer(tmp_path):
    rows = run_rows(list(ROWS), "tiny", repeats=3)
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == list(ROWS)
    for row in rows:
        assert len(row["cases"]) >= 2 and all(c["repeats"] == 3 for c in row["cases"].values())
        assert all(c["wall_s"] > 0 and c["cpu_s"] >= 0 for c in row["cases"].values())
        assert all(r > 0 for r in row["ratios"].values())
    # the checks compare outputs on the same weights (a disagreement raises inside run_rows)
    assert by_name["unet_forward"]["figures"]["max_abs_diff_vs_diffusers"] < 1e-4
    assert by_name["ddim_sampling"]["figures"]["max_abs_diff_vs_diffusers"] < 1e-3
    assert by_name["sd_tiny_pipeline"]["figures"]["max_abs_diff_vs_diffusers"] < 1e-3
    assert by_name["train_step"]["figures"]["first_loss_abs_diff"] < 1e-5
    assert by_name["import_zoo"]["cases"]["zoo"]["peak_extra_mb"] > 0  # the child's own high-water mark

    results = {"machine": {"cpu": "X", "cores": 2, "instruction_set": "AVX2", "native_bf16": False, "threads": 1,
                           "torch": "2", "python": "3", "fast_path": "fp32 + channels_last"},
               "quick": True, "rows": rows}  # fmt: skip
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{START}\nold table\n{END}\nafter\n", encoding="utf-8")
    write_readme(results, readme)
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "X, 2 cores (AVX2, no native bf16)" in text
    assert text.count("\n| ") == len(rows) + 1  # the header and one line per row


def test_runner_refuses_unknown_rows_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--only", "unet_forwrd"])
    assert exit_info.value.code == 2 and "unknown rows ['unet_forwrd']" in capsys.readouterr().err


def test_readme_command_reads_the_runner_json(tmp_path):
    row = {"name": "r", "title": "a row", "cases": {"zoo": {"wall_s": 1.0, "cpu_s": 1.0, "peak_extra_mb": 5.0},
           "diffusers": {"wall_s": 2.0, "cpu_s": 3.0, "peak_extra_mb": None}}, "ratios": {"zoo": 2.0, "diffusers": 1.0},
           "cpu_ratio": 3.0, "figures": {"max_abs_diff_vs_diffusers": 1e-6}, "info": {}}  # fmt: skip
    machine = {"cpu": "Y", "cores": 2, "instruction_set": "AVX512", "native_bf16": True, "threads": 2,
               "torch": "2.13", "python": "3.11", "fast_path": "bfloat16 autocast + channels_last"}  # fmt: skip
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"machine": machine, "quick": False, "rows": [row]}), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("# z\n", encoding="utf-8")
    assert main(["readme", "--json", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "## Performance" in text and "| a row | 1 (1) | diffusers | 2 (3) | 2.00 (3.00) | 5 / - |" in text
