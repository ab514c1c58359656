"""The ``zoo`` command line. Listing commands import neither torch nor plugin model code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from zoo_core import __version__
from zoo_core.errors import ZooError


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_list(args: argparse.Namespace) -> int:
    from zoo_core.api import info, list_models

    names = list_models(args.pattern, family=args.family)
    cards = [info(n) for n in names]
    if args.json:
        rows = [c.model_dump(mode="json", exclude={"metrics"}) for c in cards]
        for row in rows:  # the output as before the optional weights.size existed
            if row["weights"] is not None and row["weights"].get("size") is None:
                del row["weights"]["size"]
        _print_json(rows)
        return 0
    if not cards:
        print("no models match" if args.pattern or args.family else "no models registered")
        return 0
    from zoo_core.cli_help import render_list

    print(render_list(cards))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from zoo_core.api import info

    card = info(args.name)
    data = card.model_dump(mode="json", exclude_none=True)
    if args.json:
        _print_json(data)
    else:
        from zoo_core.cli_help import render_card

        print(render_card(card))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from zoo_core.api import list_plugins

    plugins = list_plugins()
    if args.json:
        _print_json([p.as_dict() for p in plugins])
        return 0
    for p in plugins:
        status = "ok" if p.ok else "FAILED"
        things = ", ".join(f"{len(v)} {k}" for k, v in p.registered.items()) or "nothing registered"
        print(f"{p.name} {p.version or ''} [{status}] ({p.distribution or 'in-process'}): {things}")
        for error in p.errors:
            print(f"    error: {error}")
    return 0 if all(p.ok for p in plugins) else 1


def cmd_samplers(args: argparse.Namespace) -> int:
    from zoo_core.cli_help import render_samplers, sampler_rows

    rows = sampler_rows()
    if args.json:
        _print_json(rows)
    else:
        print(render_samplers(rows))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from zoo_core import weights
    from zoo_core.api import info

    if weights.is_hub_source(args.name):  # a repo without a card: hf://org/repo[@rev][/subfolder]
        print(weights.resolve(args.name, revision=args.revision, cache_dir=args.cache_dir))
        return 0
    card = info(args.name)
    if card.weights is None:
        print(f"{args.name} has no weights to download (it is built from its config)")
        return 0
    path = weights.resolve(
        card.weights.source,
        revision=args.revision or card.weights.revision,
        files=card.weights.files,
        sha256=card.weights.sha256,
        cache_dir=args.cache_dir,
        model=card.name,
    )
    print(path)
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_sample(args: argparse.Namespace) -> int:
    from zoo_core.bulk import run

    return run(args)


def cmd_push(args: argparse.Namespace) -> int:
    from zoo_core.hub import push

    url = push(
        args.directory,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.message,
        token=args.token,
        create_pr=args.create_pr,
    )
    print(url)
    return 0


def _export_class(name: str) -> type:
    """The model class ``zoo export`` would load, found without loading weights, so bad input fails first."""
    from zoo_core.api import get_model_class
    from zoo_core.formats import detect_architecture
    from zoo_core.registry import get_registry

    registry = get_registry()
    if name in registry.cards:
        return get_model_class(registry.card(name).architecture)
    if os.path.isdir(name):
        return get_model_class(detect_architecture(Path(name)))
    if name.startswith(("hf://", "hf-hub:", "embedded:")):
        return type(None)  # known only once downloaded; save_pretrained checks the format then
    registry.card(name)  # raises UnknownNameError with suggestions
    raise AssertionError("unreachable")


def cmd_export(args: argparse.Namespace) -> int:
    from zoo_core.export import check_variant, unsupported_format, write_folder

    out = Path(args.out)
    check_variant(args.variant)
    cls = _export_class(args.name)
    formats = getattr(cls, "export_formats", None)
    if formats is not None and args.format not in formats:
        raise unsupported_format(args.name, args.format, formats)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is a file: give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ZooError(
            f"{out} exists and is not empty: choose another folder, or pass --overwrite to replace it"
        )
    from zoo_core.api import load

    model = load(args.name)
    write_folder(
        out,
        lambda tmp: model.save_pretrained(tmp, format=args.format, variant=args.variant),
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from zoo_core.registry import get_registry

    registry = get_registry()
    if args.list or args.converter is None:
        return _list_converters(registry.converters(), args.json)
    converter = registry.converter(args.converter)
    if args.source is None or args.out is None:
        raise ZooError(
            f"zoo convert {args.converter} needs SOURCE and OUT: `zoo convert {args.converter} FILE OUT_DIR` "
            f"(it reads {converter.reads})"
        )
    options = {k.replace("-", "_"): _parse_value(v) for k, _, v in (s.partition("=") for s in args.set or [])}
    out = converter.run(Path(args.source), Path(args.out), **options)
    print(f"wrote {out}")
    return 0


def _list_converters(converters: Sequence[Any], as_json: bool) -> int:
    rows = [c.describe() for c in converters]
    if as_json:
        _print_json(rows)
        return 0
    if not rows:
        print("no converters registered (plugins register them; see `zoo plugins`)")
        return 0
    width = max(len(r["name"]) for r in rows)
    plugin = max(len(r["plugin"]) for r in rows) + 2
    for r in rows:
        print(f"{r['name']:<{width}}  {'(' + r['plugin'] + ')':<{plugin}}  reads:  {r['reads']}")
        print(f"{'':<{width}}  {'':<{plugin}}  writes: {r['writes'] or '(nothing: read only)'}")
    print(
        "\nzoo convert NAME FILE OUT_DIR [--set KEY=VALUE] writes a zoo model; a card whose weights.format is NAME "
        "reads FILE directly; `zoo export MODEL OUT --format official` writes what a converter writes."
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from zoo_core.metrics.standard import evaluate, format_result

    result = evaluate(args)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from zoo_core.metrics.reports import run_report

    return run_report(args)


def cmd_train(args: argparse.Namespace) -> int:
    from zoo_core.training.api import train_from_cli

    return train_from_cli(args)


class SampleHelp(argparse.Action):
    """``zoo sample --help``, and after a model name also that model's options, default sampler and steps."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *args: Any) -> None:
        text = parser.format_help()
        name = getattr(namespace, "name", None)
        if name:
            from zoo_core.cli_help import model_help

            text += "\n" + model_help(name) + "\n"
        parser._print_message(text, sys.stdout)
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): every bad-input message of zoo is one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="zoo",
        description="A model zoo for generative image models.",
        epilog="Start with `zoo list`, then `zoo sample NAME --help` (a model's options) and "
        "`zoo sample NAME --n 16 --out grid.png`; `zoo samplers` and `zoo train --help` list the samplers and "
        "trainers.",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="`zoo COMMAND --help` shows its options"
    )
    sub.required = True

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'ddpm-*'")
    p.add_argument("--family", help="only this family (ddpm, ddgan, stylegan, latent, ...)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON (without metrics)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model card")
    p.add_argument("name", help="model name (`zoo list` shows them)")
    p.add_argument("--json", action="store_true", help="print the whole card as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="list plugins, what they registered, and their errors")
    p.add_argument("--json", action="store_true", help="print the plugins as JSON (versions, hooks, errors)")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser(
        "samplers", help="list samplers, their options with defaults, and the model kinds they run"
    )
    p.add_argument("--json", action="store_true", help="print the samplers as JSON")
    p.set_defaults(func=cmd_samplers)

    p = sub.add_parser("download", help="download (and verify) a model's weights into the Hub cache")
    p.add_argument(
        "name", help="model name from `zoo list`, or a Hub source hf://org/repo[@revision][/subfolder]"
    )
    p.add_argument(
        "--revision", help="branch, tag or commit to download instead of the card's pinned revision"
    )
    p.add_argument(
        "--cache-dir", help="Hub cache to download into (default: HF_HUB_CACHE, ~/.cache/huggingface/hub)"
    )
    p.set_defaults(func=cmd_download)

    p = sub.add_parser(
        "sample",
        help="sample a model into a grid, an .npz array or a folder of PNGs (resumable, shardable under torchrun)",
        add_help=False,
    )
    p.add_argument(
        "-h",
        "--help",
        action=SampleHelp,
        help="show this help (after NAME: also that model's options) and exit",
    )
    p.add_argument("name", help="model name or saved model directory (`zoo sample NAME --help`: its options)")
    p.add_argument(
        "-n",
        "--n",
        type=int,
        default=16,
        help="number of images (write -n under torchrun, which takes --n itself)",
    )
    p.add_argument("--seed", type=int, default=0, help="image i is seeded seed + i")
    p.add_argument(
        "--out",
        help="a grid image (.png/.jpg/.webp, at most 1024 images) or samples.npz (uint8 [N, H, W, C])",
    )
    p.add_argument(
        "--out-dir", help="write one PNG per image (000000.png, ...) and manifest.json; a rerun resumes"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="images per batch (default: from the model's memory use and free memory)",
    )
    p.add_argument(
        "--shard", help="i/K: draw images i, i+K, ... of the run (without torchrun; i counts from 0)"
    )
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: OMP_NUM_THREADS, else the CPUs not already busy)"
    )
    p.add_argument("--sampler", help="sampler name (default: the model's; `zoo samplers` lists them)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the card's for its sampler)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps, ... (default: cpu)")
    p.add_argument(
        "--dtype", help="float32 (default), bfloat16, float16, or auto (the hardware's fast path, printed)"
    )
    p.add_argument("--revision", help="Hub branch, tag or commit of the weights (default: the card's)")
    p.add_argument("--weights", help="replace the card's weights source (directory, file or hf://...)")
    p.add_argument(
        "--allow-nonfinite-weights",
        action="store_true",
        help="load weights holding NaN/inf anyway (debugging)",
    )
    p.add_argument("--prompt", help="text prompt (text-to-image models)")
    p.add_argument("--negative-prompt", help="what to steer away from (text-to-image models; default '')")
    p.add_argument(
        "--guidance-scale",
        type=float,
        help="classifier-free guidance weight (text-to-image; <= 1: no guidance)",
    )
    p.add_argument("--eta", type=float, help="noise of DDIM / euler-a steps (0: deterministic)")
    p.add_argument("--truncation-psi", type=float, help="GAN truncation toward the mean w (1: none)")
    p.add_argument("--labels", help="comma-separated class labels, one per image")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any other sample() argument (JSON value)"
    )
    p.add_argument("--nrow", type=int, help="images per grid row (default: about the square root of n)")
    p.add_argument("--scale", type=int, default=1, help="enlarge the grid by this factor (nearest neighbour)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("push", help="upload a saved model directory to the Hugging Face Hub")
    p.add_argument("directory", help="folder written by save_pretrained (or `zoo export`)")
    p.add_argument("repo_id", help="Hub repo to push to, org/name (created if missing)")
    p.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo is unchanged)"
    )
    p.add_argument("--revision", help="branch to push to (created from main if missing); default main")
    p.add_argument(
        "--create-pr", action="store_true", help="open a pull request against main instead of pushing"
    )
    p.add_argument(
        "--message", "--commit-message", dest="message", help="commit message of the one upload commit"
    )
    p.add_argument(
        "--token", help="Hugging Face token (default: HF_TOKEN or the one saved by `hf auth login`)"
    )
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("export", help="write a model in the zoo, diffusers or official layout")
    p.add_argument("name", help="model name, or a directory saved by save_pretrained / `zoo export`")
    p.add_argument("out", help="folder to write (written atomically: nothing is left half-written)")
    p.add_argument(
        "--format",
        choices=("zoo", "diffusers", "official"),
        default="zoo",
        help="zoo (config.json + model.safetensors), diffusers (a pipeline folder), official (the original code's "
        "checkpoint); `zoo export` says which ones a model has",
    )
    p.add_argument(
        "--variant", choices=("fp16", "bf16"), help="also half precision, diffusers' variant file naming"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists and is not empty")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "convert",
        help="convert an official checkpoint into the zoo format; without arguments, list the converters",
    )
    p.add_argument("converter", nargs="?", help="converter name (`zoo convert` lists them)")
    p.add_argument("source", nargs="?", help="the official checkpoint file")
    p.add_argument("out", nargs="?", help="folder to write the zoo model into")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a converter option (JSON value), e.g. preset=cifar10",
    )
    p.add_argument(
        "--list", action="store_true", help="list the registered converters: what each reads and writes"
    )
    p.add_argument("--json", action="store_true", help="with --list (or no converter): print JSON")
    p.set_defaults(func=cmd_convert)

    # Each trainer's config fields become flags of `zoo train NAME` (parsed in train_from_cli, where the
    # trainer is known), so this sub-parser only takes the name and hands the rest over.
    p = sub.add_parser(
        "train",
        help="train a model (also under torchrun); `zoo train NAME --help` lists that trainer's options",
        add_help=False,
    )
    p.add_argument("name", nargs="?", help="trainer name (`zoo train --help` lists them)")
    p.add_argument("-h", "--help", action="store_true", help="show the trainers, or NAME's options, and exit")
    p.add_argument(
        "options", nargs=argparse.REMAINDER, help="the trainer's options (see `zoo train NAME --help`)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="FID / KID / precision-recall of a model or of saved samples against a reference",
        description="FID and KID (torchmetrics) and precision/recall (Kynkaanniemi et al. 2019) of samples "
        "(a model sampled here, a folder of PNGs or an .npz from `zoo sample`) against a reference; needs "
        "zoo-core[eval]. Reference features are cached.",
    )
    from zoo_core.metrics.eval_args import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "report",
        help="measured reports: trilemma (quality vs sampling time of the families), ddim-steps (DDIM Table 1), samplers (model x sampler matrix)",
    )
    reports = p.add_subparsers(
        dest="report", metavar="REPORT", help="`zoo report REPORT --help` shows its options"
    )
    reports.required = True
    from zoo_core.metrics.eval_args import add_report_parsers

    add_report_parsers(reports)
    p.set_defaults(func=cmd_report)

    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: Any) -> None:
    from zoo_core.registry import get_registry

    registry = get_registry()
    for plugin in list(registry.plugins.values()):
        for impl in registry.pm.hook.zoo_register_commands.get_hookimpls():
            if impl.plugin_name == plugin.name:
                try:
                    impl.function(cli=sub)
                except Exception as exc:  # a broken plugin command must not break `zoo`
                    registry._fail(plugin, f"zoo_register_commands raised {type(exc).__name__}: {exc}", exc)


def _is_zoo_warning(category: type[Warning]) -> bool:
    """Warnings zoo and its plugins raise for users (unverified weights, Hub unreachable, truncated prompt)."""
    return category.__module__.split(".")[0].startswith("zoo")


@contextlib.contextmanager
def clean_warnings() -> Iterator[None]:
    """Show zoo's own warnings as one line ``warning: ...`` on stderr, not ``file:line: Category: ...`` with the
    source line: on the command line the file and line are noise. Other libraries' warnings keep their format."""
    original = warnings.showwarning

    def show(
        message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
    ):
        if _is_zoo_warning(category):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        with clean_warnings():
            return int(args.func(args) or 0)
    except (ZooError, ValueError, TypeError) as exc:
        # bad input (names, configs, sampler arguments) -> one clear line; ZOO_DEBUG=1 shows the traceback
        if os.environ.get("ZOO_DEBUG"):
            raise
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zoo samplers | head`: the reader left, nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit-time flush from failing again
        return 0


if __name__ == "__main__":
    sys.exit(main())
