"""zoo report trilemma: every row measured by the same evaluation, written as a plot and two tables."""

from __future__ import annotations

import json

import pytest

from zoo_core import cli
from zoo_core.metrics import reports

pytest.importorskip("torchmetrics")


def test_trilemma_writes_plot_and_tables(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    rows = (
        ("gaussian 3 steps", "example-gaussian-digits", None, 3, None),
        ("gaussian 8 steps", "example-gaussian-digits", None, 8, None),
    )
    monkeypatch.setattr(reports, "TRILEMMA_ROWS", rows)
    out = tmp_path / "docs" / "trilemma.png"
    assert cli.main(["report", "trilemma", "--n", "20", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["steps"] for r in table] == [3, 8] and all(r["n"] == 20 for r in table)
    assert [r["nfe_per_image"] for r in table] == [6, 16]  # predictor + corrector per step
    assert all(r["fid"] > 0 and 0 <= r["recall"] <= 1 and r["seconds_per_image"] > 0 for r in table)
    markdown = out.with_suffix(".md").read_text()
    assert "| gaussian 8 steps | 16 |" in markdown and "--n 20" in markdown


def test_trilemma_bad_input(tmp_path, capsys):
    assert cli.main(["report", "trilemma", "--n", "5", "--out", str(tmp_path / "t.png")]) == 2
    assert "at least 10" in capsys.readouterr().err
    assert cli.main(["report", "trilemma", "--out", str(tmp_path / "t.txt")]) == 2
    assert ".png" in capsys.readouterr().err
    assert cli.main(["report", "trilemma", "--rows", "nope", "--out", str(tmp_path / "t.png")]) == 2
    assert "DDGAN 4 steps" in capsys.readouterr().err
