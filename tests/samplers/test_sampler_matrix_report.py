"""``zoo report samplers`` at tiny n: every row and column runs and the table holds a number per cell."""

from __future__ import annotations

import json

import torch

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


def test_final_samples_are_the_images_before_the_clamp_for_every_batch():
    import zoo
    from zoo_core.metrics.sampler_matrix import FinalSamples
    from zoo_core.metrics.sampling import sample_model

    model = zoo.load("ddgan")
    final = FinalSamples()
    images, _ = sample_model(model, 5, batch_size=2, sampler="pndm", steps=4, callback=final)
    raw = final.samples()
    assert raw.shape == images.shape  # three batches (2 + 2 + 1), each one's last x
    assert torch.equal(model.decode(raw).clamp(-1, 1), images)


def test_pndm_overshoots_on_ddgan_where_ddim_does_not():
    """The measured reason behind the bad pndm x ddgan cell: its images leave [-1, 1] before the clamp."""
    from zoo_core.metrics.sampler_matrix import measure

    pndm, ddim = measure("ddgan", "pndm", 50, 4, 4), measure("ddgan", "ddim", 50, 4, 4)
    assert pndm["out_of_range"] > 0.05 and pndm["max_abs"] > 1.5
    assert ddim["out_of_range"] == 0 and ddim["max_abs"] <= 1
    assert abs(pndm["a0"] - 0.5217) < 1e-3  # DDGAN's lowest timestep keeps half the signal


def _cell(sampler: str, share: float, model: str = "m") -> dict:
    return {
        "model": model,
        "sampler": sampler,
        "steps": 4,
        "run_steps": 4,
        "n": 8,
        "metric": "fd",
        "value": 1.0,
        "out_of_range": share,
        "max_abs": 1 + share,
        "a0": 0.5,
    }


def test_a_cell_far_above_its_rows_out_of_range_median_gets_a_footnote_with_the_numbers():
    from zoo_core.metrics.sampler_matrix import markdown

    cells = [_cell("a", 0.0), _cell("b", 0.02), _cell("c", 0.31), _cell("d", 0.05, model="other")]
    table = markdown(cells, 8, "cmd")
    assert table.count("[1]") == 2 and "[2]" not in table  # the marker and its note; b is within the margin
    note = table.splitlines()[-1]
    assert (
        note.startswith("[1] c 4 on m: 31% of the pixels lie more than 0.1 outside")
        and "median 2%" in note
        and "a_0 = 0.5" in note
    )
    assert "sqrt(1 - a_0) = 0.71" in note
    assert "[1]" not in markdown([_cell("a", 0.2), _cell("b", 0.25)], 8, "cmd")  # a whole row alike: no note
