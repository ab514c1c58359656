"""Every `zoo` command run as a subprocess: exit codes and outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image


def zoo(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", *args], capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"zoo {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def test_version():
    assert zoo("--version").stdout.startswith("zoo 0.")


def test_list_and_filters():
    out = zoo("list").stdout
    assert "example-gaussian-digits  example   shipped (" in out
    listed = zoo("list", "example-*").stdout.splitlines()
    assert listed[0].startswith("NAME") and listed[1].startswith("example-gaussian-digits")
    assert not listed[2].strip()  # one model, then the legend
    assert zoo("list", "--family", "no-such-family").stdout.strip() == "no models match"
    cards = json.loads(zoo("list", "--json").stdout)
    assert "example-gaussian-digits" in {c["name"] for c in cards}


def test_list_imports_no_torch():
    code = "import sys; from zoo_core.cli import main; main(['list']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_info_yaml_json_and_unknown_name():
    assert "architecture example.gaussian" in zoo("info", "example-gaussian-digits").stdout.splitlines()[0]
    card = json.loads(zoo("info", "example-gaussian-digits", "--json").stdout)
    assert card["default_sampler"] == "pc" and card["resolution"] == 16
    bad = zoo("info", "example-gaussian-digit", check=False)
    assert bad.returncode == 2
    assert "Unknown model 'example-gaussian-digit'. Did you mean 'example-gaussian-digits'?" in bad.stderr


def test_plugins_json_lists_versions_and_hooks():
    plugins = {p["name"]: p for p in json.loads(zoo("plugins", "--json").stdout)}
    assert plugins["builtin"]["distribution"] == "zoo-core"
    assert "zoo_register_samplers" in plugins["example"]["hooks"]
    assert plugins["example"]["errors"] == []


def test_plugins_exit_code_reports_a_broken_plugin(tmp_path, monkeypatch):
    from fakedist import activate, make_plugin_dist

    make_plugin_dist(tmp_path, "zoo-broken", "broken", "zoo_broken_cli", "raise RuntimeError('nope')\n")
    activate(tmp_path, monkeypatch)
    result = zoo("plugins", check=False)
    assert result.returncode == 1
    assert "broken 0.0.1 [FAILED]" in result.stdout and "RuntimeError: nope" in result.stdout
    assert "example-gaussian-digits" in zoo("list").stdout  # the rest keep working


def test_samplers_lists_kinds_and_options():
    rows = {r["name"]: r for r in json.loads(zoo("samplers", "--json").stdout)}
    assert rows["gan"]["kinds"] == ["gan"] and "truncation_psi" in rows["gan"]["options"]
    assert rows["pc"]["plugin"] == "example"
    assert rows["pc"]["options"] == ["clip_sample", "corrector_steps", "init", "snr", "strength"]
    assert "pc" in zoo("samplers").stdout


def test_sample_writes_a_png_grid(tmp_path):
    out = tmp_path / "grid.png"
    result = zoo(
        "sample",
        "example-gaussian-digits",
        "--n",
        "4",
        "--seed",
        "1",
        "--out",
        str(out),
        "--scale",
        "2",
        "--quiet",
    )
    assert f"wrote 4 samples of example-gaussian-digits to {out}" in result.stdout
    image = Image.open(out)
    assert image.size == (2 * (2 * 18 + 2), 2 * (2 * 18 + 2))  # 2x2 grid of 16px with 2px padding, scaled 2x
    again = tmp_path / "again.png"
    zoo(
        "sample",
        "example-gaussian-digits",
        "--n",
        "4",
        "--seed",
        "1",
        "--out",
        str(again),
        "--scale",
        "2",
        "--quiet",
    )
    assert out.read_bytes() == again.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "pcc"], "Unknown sampler 'pcc'. Did you mean 'pc'?"),
        (
            ["--sampler", "gan"],
            "Sampler 'gan' cannot run a 'diffusion' model (GaussianDiffusionModel): it runs GAN generators",
        ),
        (["--set", "snr=-1"], "snr > 0"),
        (["--set", "colour=1"], "unexpected arguments ['colour']"),
    ],
)
def test_sample_bad_input_is_a_clear_error(tmp_path, args, message):
    result = zoo(
        "sample",
        "example-gaussian-digits",
        "--n",
        "2",
        "--out",
        str(tmp_path / "x.png"),
        "--quiet",
        *args,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_download_prints_the_local_path():
    out = zoo("download", "example-gaussian-digits").stdout.strip()
    assert out.endswith("zoo_plugin_example/weights/gaussian-digits")


def test_convert_with_unknown_converter(tmp_path):
    result = zoo("convert", "no-such-converter", str(tmp_path / "a"), str(tmp_path / "b"), check=False)
    assert result.returncode == 2 and "Unknown converter 'no-such-converter'" in result.stderr


def test_eval_measures_a_digits_model():
    result = zoo(
        "eval", "example-gaussian-digits", "--n", "40", "--batch-size", "20", "--steps", "10", "--json"
    )
    report = json.loads(result.stdout)
    assert report["n"] == 40 and 0 <= report["precision"] <= 1 and 0 <= report["recall"] <= 1
    assert report["nfe_per_image"] == 20  # 10 predictor steps + 10 corrector steps
    assert report["fid"] > 0 and report["features"] == "digits"


COMMAND_PLUGIN = """
from zoo import hookimpl

def hello(args):
    print(f"hello {args.who}")
    return 0

@hookimpl
def zoo_register_commands(cli):
    parser = cli.add_parser("hello", help="say hello")
    parser.add_argument("who")
    parser.set_defaults(func=hello)
"""


def test_plugins_add_subcommands(tmp_path, monkeypatch):
    from fakedist import activate, make_plugin_dist

    make_plugin_dist(tmp_path, "zoo-hello", "hello", "zoo_hello_cmd", COMMAND_PLUGIN)
    activate(tmp_path, monkeypatch)
    assert zoo("hello", "world").stdout.strip() == "hello world"
    assert "say hello" in zoo("--help").stdout
