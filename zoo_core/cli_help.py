"""What the ``zoo`` commands print to explain the registry: samplers and their options, a model's sample options.

Kept apart from ``cli.py`` (the parser and the commands) so the rendering can be tested on its own. Nothing here
loads weights: a model's options come from its card, its registered class and its config.
"""

from __future__ import annotations

import re
import shutil
import textwrap
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


def _card_config(card: Any, cls: type) -> Any:
    """The model's config without its weights: the config.json shipped beside embedded or local weights (a JSON
    read), else the card's own config section."""
    from pathlib import Path

    from zoo_core import weights

    source = card.weights.source if card.weights else None
    folder: Path | None = None
    try:
        if source and source.startswith("embedded:"):
            folder = weights.embedded_path(source)
        elif source and not weights.is_hub_source(source):
            folder = Path(source).expanduser()
        if folder is not None and (folder / "config.json").is_file():
            return cls.read_config(folder, card.config)
    except Exception:  # a help text must not fail on a broken local folder: fall back to the card
        pass
    return cls.config_class.parse(card.config, where=f"card {card.name!r}")


def model_help(name: str) -> str:
    """The ``zoo sample NAME --help`` section of one model: its conditioning options and its default sampler's
    options with defaults, the default sampler and steps; from the card, the class and the config (no weights)."""
    from zoo_core.api import get_model_class, get_sampler, info

    card = info(name)
    cls = get_model_class(card.architecture)
    config = _card_config(card, cls)
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
