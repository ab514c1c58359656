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


def _ddim(eta, steps, fid):
    return {"sampler": "ddim", "eta": eta, "steps": steps, "fid": fid}


def test_ddim_shape_reads_the_papers_ordering():
    paper = [_ddim(0.0, 10, 13.4), _ddim(0.0, 20, 6.8), _ddim(0.0, 50, 4.7), _ddim(0.0, 100, 4.2)]
    paper += [_ddim(1.0, 10, 41.1), _ddim(1.0, 20, 18.4), _ddim(1.0, 50, 8.0), _ddim(1.0, 100, 5.8)]
    assert reports.ddim_shape(paper) == {
        "eta0_improves_or_holds": True,
        "eta0_beats_eta1_at_fewest_steps": True,
    }
    worse = [_ddim(0.0, 10, 41.5), _ddim(0.0, 20, 38.1), _ddim(0.0, 50, 53.7), _ddim(1.0, 10, 30.0)]
    worse.append(_ddim(1.0, 20, 29.0))
    worse.append(_ddim(1.0, 50, 28.0))
    assert reports.ddim_shape(worse) == {
        "eta0_improves_or_holds": False,
        "eta0_beats_eta1_at_fewest_steps": False,
    }
    # within 5 % counts as holding: FID at these n is that noisy
    assert reports.ddim_shape([_ddim(0.0, 10, 10.0), _ddim(0.0, 20, 10.4), _ddim(1.0, 10, 11.0)])[
        "eta0_improves_or_holds"
    ]


def test_ddim_steps_writes_table_and_plot(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "docs" / "ddim-steps.png"
    argv = [
        "report",
        "ddim-steps",
        "--n",
        "10",
        "--steps",
        "2,4",
        "--ancestral-steps",
        "5",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads(out.with_suffix(".json").read_text())
    rows = document["rows"]
    assert [(r["sampler"], r["steps"], r["eta"]) for r in rows] == [
        ("ddim", 2, 0.0),
        ("ddim", 4, 0.0),
        ("ddim", 2, 1.0),
        ("ddim", 4, 1.0),
        ("ddpm", 5, None),
    ]
    assert [r["nfe_per_image"] for r in rows] == [2, 4, 2, 4, 5]
    assert all(r["n"] == 10 and r["fid"] > 0 for r in rows)
    assert "--eta 1.0" in rows[2]["command"] and "--sampler ddpm" in rows[4]["command"]
    assert document["shape"] == reports.ddim_shape(rows)
    markdown = out.with_suffix(".md").read_text()
    assert "| DDIM eta = 0 |" in markdown and "| DDPM ancestral, 5 steps (reference) |" in markdown
    assert "--steps 2,4 --ancestral-steps 5" in markdown
    # eta 0 with one step count per column, from the measured rows
    fid = {(r["eta"], r["steps"]): r["fid"] for r in rows}
    assert f"| DDIM eta = 1 | {fid[(1.0, 2)]:.2f} | {fid[(1.0, 4)]:.2f} |" in markdown


def test_ddim_steps_bad_input(tmp_path, capsys):
    out = str(tmp_path / "d.png")
    assert cli.main(["report", "ddim-steps", "--n", "5", "--out", out]) == 2
    assert "at least 10" in capsys.readouterr().err
    assert cli.main(["report", "ddim-steps", "--steps", "10,x", "--out", out]) == 2
    assert "10,20,50,100" in capsys.readouterr().err
    assert cli.main(["report", "ddim-steps", "--steps", "10", "--out", out]) == 2
    assert "at least two" in capsys.readouterr().err
    assert cli.main(["report", "ddim-steps", "--out", str(tmp_path / "d.txt")]) == 2
    assert ".png" in capsys.readouterr().err
