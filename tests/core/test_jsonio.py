"""The one JSON-config reader the core and the plugins share."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core.errors import WeightsError
from zoo_core.jsonio import read_json_object, read_optional_json_object


def test_reads_an_object(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"in_channels": 3, "names": ["a"]}', encoding="utf-8")
    assert read_json_object(path) == {"in_channels": 3, "names": ["a"]}
    assert read_optional_json_object(path) == {"in_channels": 3, "names": ["a"]}


def test_missing_file_is_an_error_unless_optional(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    with pytest.raises(WeightsError, match=r"Could not read .*card\.json"):
        read_json_object(path)
    assert read_optional_json_object(path) == {}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a string"'])
def test_broken_or_non_object_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "model_index.json"
    path.write_text(text, encoding="utf-8")
    for read in (read_json_object, read_optional_json_object):
        with pytest.raises(WeightsError, match=r"model_index\.json"):
            read(path)
