"""The CLI explains itself: every option has help, and models, samplers and trainers list their own options."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from zoo_core.cli import build_parser, clean_warnings, main
from zoo_core.config_flags import field_description

ROOT = Path(__file__).resolve().parents[2]


def undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Every option, positional and sub-command under ``parser`` (nested) that has no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if not action.help:
                missing.append(f"{path} {action.metavar or action.dest} (the sub-command list)")
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name} (the command itself)")
                missing += undocumented(sub, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    assert undocumented(parser, "zoo") == []
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    # the walk reached the nested report commands and the commands whose options are built per name
    assert {"list", "sample", "train", "eval", "report", "export", "push"} <= set(commands)
    reports = next(a for a in commands["report"]._actions if isinstance(a, argparse._SubParsersAction))
    assert "trilemma" in reports.choices


def test_the_walk_finds_an_undocumented_option():
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(help="commands")
    inner = sub.add_parser("a", help="a").add_subparsers(help="more").add_parser("b", help="b")
    inner.add_argument("--quiet", help="documented")
    inner.add_argument("--loud")
    sub.add_parser("c")
    assert undocumented(parser, "x") == ["x a b --loud", "x c (the command itself)"]


def test_every_trainer_option_has_a_description():
    from zoo_core.training.api import get_trainer_class, list_trainers, trainer_parser

    for name in list_trainers():
        parser = trainer_parser(name, get_trainer_class(name))
        assert undocumented(parser, f"zoo train {name}") == []
        config = get_trainer_class(name).config_class
        bare = [f for f in config.model_fields if not field_description(config, f)]
        assert bare == [], f"{name}: fields without a description"


def test_zoo_warnings_are_one_clean_line(capsys):
    from zoo_core.errors import UnverifiedWeightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(m, c, f, n, line)
        )  # Python's own display (pytest records warnings instead)
        with clean_warnings():
            warnings.warn("dir: checksums not checked", UnverifiedWeightsWarning, stacklevel=1)
            warnings.warn("a library's own", DeprecationWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.startswith("warning: dir: checksums not checked\n")
    assert "DeprecationWarning: a library's own" in err  # other libraries keep Python's format


def test_unverified_weights_warning_reaches_the_cli_user_as_one_line(tmp_path):
    weights = ROOT / "plugins/ddgan/zoo_ddgan/weights/ddgan-digits"
    out = tmp_path / "one.png"
    result = subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", "sample", "ddgan", "-n", "1", "--quiet", "--out", str(out)]
        + ["--weights", str(weights)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert f"warning: {weights}: checksums not checked (the card 'ddgan' pins its published files" in lines[0]
    assert "UnverifiedWeightsWarning" not in result.stderr and ".py:" not in result.stderr
    assert out.exists()


def test_progress_bar_prints_100_percent_once(capsys):
    from zoo_core.bulk import _progress

    advance = _progress(6, quiet=False)
    for _ in range(3):
        time.sleep(0.12)  # past tqdm's mininterval, so every update draws
        advance(2)
    advance(0, close=True)
    frames = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert sum("100%" in f for f in frames) == 1
    assert any(" 33%" in f for f in frames) and any(" 67%" in f for f in frames)


@pytest.mark.parametrize("argv", [["list", "--help"], ["sample", "--help"], ["report", "trilemma", "--help"]])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0 and "--" in capsys.readouterr().out


def test_every_sampler_documents_its_options_and_the_defaults_are_the_real_ones():
    import inspect

    from zoo_core.api import get_sampler, list_samplers

    for name in list_samplers():
        cls = type(get_sampler(name))
        info = cls.describe_options()
        assert set(info) == set(cls.options)
        assert all(option.help for option in info.values()), f"{name}: an option without help"
        # a literal default must be what the code uses when the option is not given
        for method in ("sample", "parse_options"):
            params = inspect.signature(getattr(cls, method)).parameters if hasattr(cls, method) else {}
            for key, param in params.items():
                if key in info and info[key].default_text is None and param.default is not param.empty:
                    assert info[key].default == param.default, f"{name}.{key}"


def test_samplers_command_shows_options_defaults_and_kinds(capsys):
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    ddim = out[out.index("\nddim (builtin)") : out.index("\nddpm (builtin)")]
    assert "runs: diffusion models (Denoisers, any prediction type); default steps: 50" in ddim
    assert "eta               0.0             noise scale: 0 deterministic" in ddim
    assert "timestep_spacing  the schedule's  which timesteps" in ddim
    gan = out[out.index("\ngan (builtin)") :]
    assert "runs: GAN generators (one forward pass); default steps: 1" in gan
    assert "truncation_psi     1.0" in gan
    assert "snr              0.16" in out[out.index("\npc (example)") :]
    assert main(["samplers", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["euler-a"]["option_info"]["eta"] == {
        "default": "1.0",
        "help": "scale of the fresh noise: 0 is plain Euler, 1 full ancestral",
    }
    assert rows["ddpm"]["default_steps"] is None and rows["ddpm"]["kinds"] == ["diffusion"]


def model_help_text(name: str, capsys, monkeypatch) -> str:
    import zoo_core.api

    def no_loading(*args, **kwargs):
        raise AssertionError("`zoo sample NAME --help` must not load weights")

    monkeypatch.setattr(zoo_core.api, "load", no_loading)
    with pytest.raises(SystemExit) as exit_:
        main(["sample", name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zoo sample")  # the command's own flags come first
    return " ".join(out[out.index(f"\n{name} (") :].split())  # unwrap


def test_sample_help_of_a_text_to_image_model_lists_its_options(capsys, monkeypatch):
    text = model_help_text("t2i", capsys, monkeypatch)
    assert "default sampler: dpm++2m, 20 steps" in text
    # the guidance default is the embedded model's own config (3), not the class default 7.5
    assert "--guidance-scale 3.0 classifier-free guidance weight" in text
    assert "--prompt '' text prompt" in text and "--negative-prompt ''" in text
    assert "--set height= 32 image height in pixels" in text and "--set width= 32" in text
    assert "options of its sampler 'dpm++2m'" in text and "--set use_karras_sigmas= the schedule's" in text


def test_sample_help_of_a_hub_model_needs_no_download(capsys, monkeypatch):
    text = model_help_text("sd15", capsys, monkeypatch)
    assert "default sampler: pndm, 50 steps" in text
    assert "--guidance-scale 7.5" in text and "--set height= 512" in text


def test_sample_help_of_gan_and_unconditional_models(capsys, monkeypatch):
    text = model_help_text("stylegan", capsys, monkeypatch)
    assert "--labels random from the seed class label(s) in 0..9" in text
    assert "default sampler: gan, 1 step " in text and "--truncation-psi 1.0 pull w toward the mean w" in text
    text = model_help_text("ddim-cifar10", capsys, monkeypatch)
    assert "none: it is unconditional" in text and "default sampler: ddim, 50 steps" in text
    assert "--eta 0.0 noise scale" in text


def test_sample_help_of_an_unknown_model_is_one_line(capsys):
    assert main(["sample", "ddpn", "--help"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("zoo: error: Unknown model 'ddpn'. Did you mean 'ddpm'") and len(err.splitlines()) == 1
    )
    assert "Traceback" not in err


def test_model_sample_options_are_keywords_sample_accepts():
    import inspect

    from zoo_latent.model import LatentConfig, LatentTextToImageModel

    options = LatentTextToImageModel.sample_options(LatentConfig())
    params = inspect.signature(LatentTextToImageModel.prepare_conditioning).parameters
    params = {**params, **inspect.signature(LatentTextToImageModel.sample).parameters}
    assert set(options) <= set(params)
    for key, option in options.items():
        if option.default is not None and params[key].default not in (None, inspect.Parameter.empty):
            assert option.default == params[key].default, key


COMMIT = "0123456789abcdef0123456789abcdef01234567"
CARDS = """
models:
- {name: hub-cached, family: toy, plugin: example, architecture: example.gaussian,
   description: "A toy card whose files are in the Hub cache. More prose that the listing leaves out.",
   weights: {source: "hf://zoo-test/tiny", files: ["*.json"]}}
- {name: hub-partial, family: toy, plugin: example, architecture: example.gaussian,
   weights: {source: "hf://zoo-test/tiny", files: ["*.json", "*.safetensors"], size: 1500000}}
- {name: hub-remote, family: toy, plugin: example, architecture: example.gaussian,
   weights: {source: "hf://zoo-test/elsewhere", size: 143000000}}
- {name: local-missing, family: toy, plugin: example, architecture: example.gaussian,
   weights: {source: "/nonexistent/zoo/weights", notes: "Convert the official file with zoo convert."}}
"""


def listing(tmp_path, *args: str) -> str:
    """`zoo list` in a subprocess with a user registry and a Hugging Face cache holding one snapshot."""
    import os

    snapshot = tmp_path / "hf" / "models--zoo-test--tiny" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"a": 1}' + " " * 92)  # 100 bytes
    (tmp_path / "hf" / "models--zoo-test--tiny" / "refs").mkdir()
    (tmp_path / "hf" / "models--zoo-test--tiny" / "refs" / "main").write_text(COMMIT)
    (tmp_path / "cards.yaml").write_text(CARDS)
    env = {**os.environ, "ZOO_REGISTRY": str(tmp_path / "cards.yaml"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    env.update(HF_HUB_OFFLINE="1", COLUMNS="160")
    result = subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def test_list_shows_family_description_and_where_the_weights_are(tmp_path):
    from zoo_core.cli_help import folder_size, human_size
    from zoo_core.weights import embedded_path

    out = listing(tmp_path, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "WEIGHTS", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ")}
    shipped = human_size(folder_size(embedded_path("embedded:zoo_plugin_example/weights/gaussian-digits")))
    assert rows["example-gaussian-digits"].split("  ")[0] == "example-gaussian-digits"
    assert f"example   shipped ({shipped})" in rows["example-gaussian-digits"]
    assert "toy       cached (100 B)" in rows["hub-cached"]
    assert rows["hub-cached"].endswith("A toy card whose files are in the Hub cache.")
    assert "partly cached (1.5 MB)" in rows["hub-partial"]
    assert "to download (143.0 MB)" in rows["hub-remote"]
    assert "toy       missing " in rows["local-missing"]
    assert "to download: on first use or with `zoo download NAME`" in " ".join(out.split())


def test_list_json_is_unchanged_by_the_optional_size(tmp_path):
    cards = {c["name"]: c for c in json.loads(listing(tmp_path, "list", "--json"))}
    assert set(cards["hub-cached"]["weights"]) == {"source", "revision", "files", "sha256", "format", "notes"}
    assert cards["hub-remote"]["weights"]["size"] == 143000000
    assert "metrics" not in cards["hub-cached"]


def test_info_prints_the_card_as_sections(capsys):
    assert main(["info", "ddgan"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "ddgan: ddgan family, architecture ddgan.ncsnpp (plugin ddgan)"
    for section in ("Weights", "Sampling", "Metrics", "Trained with"):
        assert section in lines
    assert "  default sampler ddgan, 4 steps; 16x16, 1 channel" in out
    weights = lines[lines.index("Weights") + 1]
    assert weights.startswith("  shipped (") and "embedded in an installed plugin" in weights
    # every metric with the command that measured it, on one line to be copied
    metrics = lines[lines.index("Metrics") + 1 :]
    assert metrics[0] == "  digits_frechet = 28.72"
    assert metrics[1].startswith("      measured with: python benchmarks/bench_trilemma.py --n 2000")
    assert "License: apache-2.0" in lines and "Paper: https://arxiv.org/abs/2112.07804" in lines
    # prose kept short: the description is cut to its first sentences, the rest is in --json
    card = json.loads(zoo_json("info", "ddgan"))
    assert len(card["description"]) > len(" ".join(lines[1 : lines.index("Weights")]))
    assert max(len(line) for line in lines if "measured with" not in line and "zoo train" not in line) <= 120


def zoo_json(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", *args, "--json"], capture_output=True, text=True, check=True
    ).stdout


def test_info_of_a_missing_local_model_says_how_to_get_it(tmp_path):
    out = listing(tmp_path, "info", "local-missing")
    assert "missing: /nonexistent/zoo/weights is not here" in out
    assert "Convert the official file with zoo convert." in out
    assert "not measured" not in out and "Metrics" not in out.splitlines()


def test_eval_takes_real_flags_not_free_form_options():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    actions = commands["eval"]._actions
    assert not [a for a in actions if a.nargs in (argparse.REMAINDER, "*", "...")]
    flags = {flag for a in actions for flag in a.option_strings}
    assert {
        "--metrics",
        "--n",
        "--reference",
        "--features",
        "--sampler",
        "--steps",
        "--seed",
        "--json",
    } <= flags
    args = parser.parse_args(["eval", "ddgan", "--metrics", "fid", "--n", "50", "--reference", "digits"])
    assert (args.samples, args.metrics, args.n, args.reference) == ("ddgan", "fid", 50, "digits")
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "ddgan", "n=50"])  # a stray word is an error, not an option


def test_sample_help_of_a_saved_model_directory(tmp_path, capsys):
    from zoo_core.api import load

    load("stylegan").save_pretrained(tmp_path / "mine")
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path / "mine"), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{tmp_path / 'mine'} (stylegan, StyleGANModel)" in text  # its saved card: family, sampler, steps
    assert "default sampler: gan, 1 step " in text
    assert "--labels random from the seed class label(s) in 0..9" in text
