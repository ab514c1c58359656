"""What the ``zoo`` commands print to explain the registry: samplers and their options, a model's sample options.

Kept apart from ``cli.py`` (the parser and the commands) so the rendering can be tested on its own. Nothing here
loads weights: a model's options come from its card, its registered class and its config.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import textwrap
from dataclasses import dataclass
from typing import Any

from zoo_core.errors import ZooError


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def _table(rows: list[tuple[str, str, str]], indent: str = "    ") -> list[str]:
    """``name  default  help`` columns, the help wrapped under itself."""
    if not rows:
        return []
    name_w = max(len(r[0]) for r in rows)
    default_w = min(max(len(r[1]) for r in rows), 22)
    lead = len(indent) + name_w + default_w + 4
    lines = []
    for name, default, text in rows:
        head = f"{indent}{name:<{name_w}}  {default:<{default_w}}  "
        wrapped = textwrap.wrap(text, max(30, _width() - lead)) or [""]
        if len(head) > lead:  # a long default: the help starts on the next line
            lines.append(head.rstrip())
            lines += [" " * lead + w for w in wrapped]
        else:
            lines.append(head + wrapped[0])
            lines += [" " * lead + w for w in wrapped[1:]]
    return lines


_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)\.\s+(?=[A-Z(])")


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a card's prose (not cut at "et al."), at most ``limit`` characters, with its stop."""
    text = " ".join((text or "").split())
    if not text:
        return ""
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    if len(sentence) > limit:
        sentence = sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + " …"
        return sentence
    return sentence + "."


def describe_steps(steps: int | None) -> str:
    return "every training timestep" if steps is None else str(steps)


# -- samplers ------------------------------------------------------------------------------------------------------
def sampler_rows() -> list[dict[str, Any]]:
    """One row per registered sampler: plugin, kinds, default steps and options (name, default, help)."""
    from zoo_core.api import get_sampler, list_samplers
    from zoo_core.registry import get_registry

    rows = []
    for name in list_samplers():
        entry = get_registry().entry("samplers", name)
        try:
            sampler = get_sampler(name)
        except ZooError as exc:
            rows.append({"name": name, "plugin": entry.plugin, "error": str(exc)})
            continue
        info = type(sampler).describe_options()
        rows.append(
            {
                "name": name,
                "plugin": entry.plugin,
                "kinds": list(sampler.kinds),
                "options": sorted(sampler.options),
                "option_info": {k: {"default": v.shown_default(), "help": v.help} for k, v in info.items()},
                "default_steps": sampler.default_steps,
                "description": sampler.description,
            }
        )
    return rows


def render_samplers(rows: list[dict[str, Any]]) -> str:
    from zoo_core.sampler import KIND_NAMES

    lines = ["Samplers (`zoo sample NAME --sampler S --set OPTION=VALUE`; options are sample() keywords):"]
    for row in rows:
        lines.append("")
        if "error" in row:
            lines.append(f"{row['name']} ({row['plugin']}) ERROR: {row['error']}")
            continue
        lines.append(f"{row['name']} ({row['plugin']}): {row['description']}")
        runs = " and ".join(KIND_NAMES.get(k, k) for k in row["kinds"])
        lines.append(f"  runs: {runs}; default steps: {describe_steps(row['default_steps'])}")
        options = [(k, v["default"], v["help"]) for k, v in row["option_info"].items()]
        if options:
            lines.append("  options (name, default, meaning):")
            lines += _table(options)
    return "\n".join(lines)


# -- one model's sample options -----------------------------------------------------------------------------------
#: sample() keywords with their own `zoo sample` flag; the rest go through --set KEY=VALUE
SAMPLE_FLAGS = {
    "prompt": "--prompt",
    "negative_prompt": "--negative-prompt",
    "guidance_scale": "--guidance-scale",
    "eta": "--eta",
    "truncation_psi": "--truncation-psi",
    "labels": "--labels",
}


def _flag(option: str) -> str:
    return SAMPLE_FLAGS.get(option, f"--set {option}=")


def card_config(card: Any, cls: type) -> Any:
    """The model's config without its weights: the published files' config where they are on this machine
    (``Model.published_config``: embedded, a local folder, the Hugging Face cache), else the card's own section."""
    return cls.config_class.parse(cls.published_config(card) or card.config, where=f"card {card.name!r}")


def model_help(name: str) -> str:
    """The ``zoo sample NAME --help`` section of one model: its conditioning options and its default sampler's
    options with defaults, the default sampler and steps; from the card, the class and the config (no weights)."""
    import os
    from pathlib import Path

    from zoo_core.api import get_model_class, get_sampler, info

    if os.path.isdir(name):  # a saved model: its own card and config.json
        from zoo_core.cards import ModelCard
        from zoo_core.formats import detect_architecture
        from zoo_core.model import read_saved_card

        folder = Path(name)
        card = read_saved_card(folder)
        cls = get_model_class(card.architecture if card else detect_architecture(folder))
        if card is None:
            card = ModelCard(
                name=folder.name or "model", family="?", plugin="?", architecture=cls.architecture
            )
        card = card.model_copy(update={"weights": None})
        try:
            config = cls.read_config(folder, card.config)
        except ZooError:
            config = cls.config_class.parse(card.config, where=str(folder))
    else:
        card = info(name)
        cls = get_model_class(card.architecture)
        config = card_config(card, cls)
    sampler_name = card.default_sampler or cls.default_sampler
    sampler = get_sampler(sampler_name) if sampler_name else None
    steps = card.default_steps or (cls.default_steps if sampler_name == cls.default_sampler else None)
    if steps is None and sampler is not None:
        steps = sampler.default_steps
    summary = first_sentence(card.description)
    lines = textwrap.wrap(
        f"{name} ({card.family}, {cls.__name__}){': ' + summary if summary else '.'}", _width()
    )
    size = f"{card.resolution}x{card.resolution}" if card.resolution else "size from its config"
    channels = f", {card.channels} channel{'s' if card.channels != 1 else ''}" if card.channels else ""
    lines.append(f"images: {size}{channels}")
    if sampler is None:
        lines.append("default sampler: none (pass --sampler; `zoo samplers` lists them)")
    else:
        lines.append(
            f"default sampler: {sampler_name}, {describe_steps(steps)} step{'' if steps == 1 else 's'} "
            f"(--sampler / --steps to change; `zoo samplers` lists the others)"
        )
    own = cls.sample_options(config, card)
    lines += ["", f"{name}'s options (flag, default, meaning):"]
    if own:
        lines += _table([(_flag(k), v.shown_default(), v.help) for k, v in own.items()], indent="  ")
    else:
        lines.append("  none: it is unconditional (n, seed and the sampler's options only)")
    if sampler is not None:
        sampler_options = type(sampler).describe_options()
        if sampler_options:
            lines += ["", f"options of its sampler {sampler_name!r} (flag, default, meaning):"]
            rows = [(_flag(k), v.shown_default(), v.help) for k, v in sampler_options.items()]
            lines += _table(rows, indent="  ")
    return "\n".join(lines)


# -- where a model's weights are ----------------------------------------------------------------------------------
def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def folder_size(path: Any) -> int:
    """Bytes under ``path`` (a file or a folder; symlinks followed, as the Hub cache's snapshots are links)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path, followlinks=True)
        for f in files
    )


@dataclass(frozen=True)
class WeightsStatus:
    """Where a card's weights are: ``where`` (shipped, cached, partly cached, to download, local, missing, none),
    a sentence of ``detail`` and the size in bytes when it is known (on disk, or the card's ``weights.size``)."""

    where: str
    detail: str
    size: int | None = None

    @property
    def label(self) -> str:
        return f"{self.where} ({human_size(self.size)})" if self.size else self.where


def weights_status(card: Any) -> WeightsStatus:
    """Where a card's weights are, without any network call (the Hub cache is asked for local files only)."""
    from pathlib import Path

    from zoo_core import sources
    from zoo_core.errors import WeightsError

    spec = card.weights
    if spec is None:
        return WeightsStatus("none", "built from its config (random init)")
    if spec.source.startswith("embedded:"):
        try:
            path = sources.embedded_path(spec.source)
        except WeightsError:
            return WeightsStatus("missing", "embedded in a plugin that is not installed")
        return WeightsStatus("shipped", "embedded in an installed plugin, works offline", folder_size(path))
    if sources.is_hub_source(spec.source):
        cached = _hub_cached(spec)
        if cached is None:
            return WeightsStatus(
                "to download", f"from {spec.source} on first use or `zoo download`", spec.size
            )
        if cached == "partial":
            return WeightsStatus(
                "partly cached", f"{spec.source}: `zoo download {card.name}` fetches the rest", spec.size
            )
        return WeightsStatus("cached", f"{spec.source}, in the Hugging Face cache", folder_size(cached))
    path = Path(spec.source).expanduser()
    if path.exists():
        return WeightsStatus("local", spec.source, folder_size(path))
    return WeightsStatus(
        "missing", f"{spec.source} is not here (the notes below say how to get it)", spec.size
    )


def _hub_cached(spec: Any) -> Any:
    """The cached snapshot folder of a Hub source, "partial" if only some of its files are cached, else None
    (huggingface_hub's own cache lookup, local files only)."""
    from pathlib import Path

    from huggingface_hub import constants

    from zoo_core.sources import parse_hf_source

    hub = parse_hf_source(spec.source)
    # nothing of the repository cached (the usual case): known from the cache layout, without importing the client
    if not (Path(constants.HF_HUB_CACHE) / f"models--{hub.repo_id.replace('/', '--')}").is_dir():
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    prefix = f"{hub.subfolder}/" if hub.subfolder else ""
    patterns = [prefix + p for p in spec.files] or ([prefix + "*"] if prefix else None)
    try:
        path = snapshot_download(
            hub.repo_id,
            revision=spec.revision or hub.revision,
            allow_patterns=patterns,
            local_files_only=True,
        )
    except IncompleteSnapshotError:
        return "partial"
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None

    folder = Path(path) / hub.subfolder if hub.subfolder else Path(path)
    if not folder.exists() or not any(folder.iterdir()):
        return None
    # without the cached tree listing the Hub client cannot tell a partial snapshot: every pattern must match
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    if any(not fnmatch.filter(present, pattern) for pattern in spec.files):
        return "partial"
    return folder


def render_list(cards: list[Any]) -> str:
    """``zoo list``: a header, then name, family, where the weights are (with size) and a one-line description."""
    rows = [(c.name, c.family, weights_status(c).label, first_sentence(c.description, 10_000)) for c in cards]
    heads = ("NAME", "FAMILY", "WEIGHTS")
    widths = [max(len(head), *(len(r[i]) for r in rows)) for i, head in enumerate(heads)]
    room = max(20, _width() - sum(widths) - 6)

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    lines = [line((*heads, "DESCRIPTION"))]
    for *cells, text in rows:
        if len(text) > room:
            text = text[: room - 2].rsplit(" ", 1)[0].rstrip(",;:(") + " …"
        lines.append(line((*cells, text)))
    legend = (
        "shipped: inside an installed plugin (works offline); cached: in the Hugging Face cache; to download: on "
        "first use or with `zoo download NAME`; missing: a local path that is not there (`zoo info NAME` says how)."
    )
    return "\n".join([*lines, "", *textwrap.wrap(legend, _width())])


def render_card(card: Any) -> str:
    """``zoo info NAME``: the card as short sections; ``--json`` has everything."""
    width = _width()

    def para(text: str, indent: str = "  ") -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent)

    lines = [f"{card.name}: {card.family} family, architecture {card.architecture} (plugin {card.plugin})"]
    if card.description:
        short = _sentences(card.description, 2, 400)
        lines += para(short)
    lines += ["", "Weights"]
    status = weights_status(card)
    lines += para(f"{status.label}: {status.detail}")
    spec = card.weights
    if spec is not None:
        facts = [f"source {spec.source}", f"format {spec.format}"]
        if spec.revision:
            facts.append(f"revision {spec.revision}")
        if spec.sha256:
            facts.append(f"{len(spec.sha256)} file(s) pinned by sha256")
        lines += para("; ".join(facts))
        if spec.notes:  # often how to get the files: kept longer than the other prose
            lines += para(_sentences(spec.notes, 4, 700))
    lines += ["", "Sampling"]
    sampling = f"default sampler {card.default_sampler or 'none'}"
    if card.default_steps:
        sampling += f", {card.default_steps} step{'s' if card.default_steps != 1 else ''}"
    if card.resolution:
        sampling += f"; {card.resolution}x{card.resolution}"
    if card.channels:
        sampling += f", {card.channels} channel{'s' if card.channels != 1 else ''}"
    lines += para(sampling + f" (`zoo sample {card.name} --help` lists its options)")
    if card.metrics:
        lines += ["", "Metrics"]
        for metric in card.metrics:
            lines += para(f"{metric.name} = {metric.value}", "  ")
            if metric.command:  # on one line, to be copied
                lines.append(f"      measured with: {metric.command}")
            elif not metric.notes or "not measured" not in metric.notes:
                lines.append("      not measured by zoo")
            if metric.notes:
                lines += para(first_sentence(metric.notes, 160), "      ")
    about = [
        ("License", card.license),
        ("Paper", card.paper),
        ("Dataset", card.dataset),
        ("Tags", ", ".join(card.tags) if card.tags else None),
    ]
    if any(value for _, value in about) or card.training_command:
        lines.append("")
    for label, value in about:
        if value:
            lines += textwrap.wrap(f"{label}: {value}", width, subsequent_indent="  ")
    if card.training_command:
        lines += ["", "Trained with", f"  {' '.join(card.training_command.split())}"]
    lines += ["", f"(the whole card: `zoo info {card.name} --json`)"]
    return "\n".join(lines)


def _sentences(text: str, count: int, limit: int) -> str:
    """The first ``count`` sentences of ``text``, at most ``limit`` characters."""
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text)
    short = ". ".join(p.rstrip(".") for p in parts[:count]) + "."
    if len(short) > limit:
        return first_sentence(text, limit)
    return short
