"""``zoo report samplers`` at tiny n: every row and column runs and the table holds a number per cell."""

from __future__ import annotations

import json

from zoo_core.cli import main
from zoo_core.metrics.sampler_matrix import columns, rows


def test_the_matrix_rows_and_columns_cover_what_the_issue_asks():
    assert {"ddpm", "ddgan", "t2i", "example-gaussian-digits"} <= set(rows())
    cols = columns()
    assert ("ddgan", 4) in cols and ("ddgan", 8) in cols
    assert {"ddim", "dpm++2m", "pc", "pndm"} <= {s for s, _ in cols} and "gan" not in {s for s, _ in cols}


def test_zoo_report_samplers_writes_a_table_with_a_number_per_cell(tmp_path):
    out = tmp_path / "matrix.md"
    cmd = ["report", "samplers", "--n", "2", "--batch-size", "2"]
    assert main([*cmd, "--models", "ddgan,example-gaussian-digits", "--out", str(out)]) == 0
    table = out.read_text()
    assert "n = 2" in table and "| ddgan (fd) |" in table
    cells = json.loads(out.with_suffix(".json").read_text())
    assert len(cells) == 2 * len(columns())
    assert all(c["value"] == c["value"] and c["value"] >= 0 for c in cells)  # finite, not NaN
    ddgan = {(c["sampler"], c["steps"]): c for c in cells if c["model"] == "ddgan"}
    assert ddgan[("ddim", 50)]["run_steps"] == 4 and "(T=4)" in table


def test_an_unknown_model_is_a_one_line_error(tmp_path, capsys):
    cmd = ["report", "samplers", "--n", "2", "--models", "nope", "--out", str(tmp_path / "m.md")]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err and err.count("\n") == 1
