"""benchmarks.bench_sample_scale's process-level modes at tiny sizes: they measure and compare what they say."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import bench_sample_scale as bench


def test_max_rss_is_read_from_time_v_output():
    text = "\tCommand being timed: \"zoo\"\n\tMaximum resident set size (kbytes): 359526\n\tExit status: 0\n"
    assert bench._max_rss_mb(text) == pytest.approx(359526 / 1024)
    with pytest.raises(SystemExit, match="Maximum resident set size"):
        bench._max_rss_mb("nothing here")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("/usr/bin/time") is None, reason="needs GNU time at /usr/bin/time")
def test_memory_procs_measures_two_processes_and_compares_their_images(tmp_path, capsys):
    assert bench.main(["memory-procs", "--small", "2", "--large", "3", "--json", str(tmp_path / "r.json")]) == 0
    import json

    result = json.loads((tmp_path / "r.json").read_text())
    assert [row["n"] for row in result["rows"]] == [2, 3]
    assert all(row["max_rss_mb"] > 50 for row in result["rows"])  # a whole process with torch in it
    assert result["images_000000.png_to_000001.png_cmp_identical"] is True


@pytest.mark.slow
def test_bad_output_cases_exit_2_with_one_line_and_write_nothing(tmp_path):
    result = bench.bad_output(None, tmp_path)
    assert len(result["rows"]) == 6
    for row in result["rows"]:
        assert row["exit"] == 2 and row["stderr_lines"] == 1 and row["written"] == [], row
