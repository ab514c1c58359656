"""What the ``zoo`` commands print to explain the registry: samplers and their options, a model's sample options.

Kept apart from ``cli.py`` (the parser and the commands) so the rendering can be tested on its own. Nothing here
loads weights: a model's options come from its card, its registered class and its config.
"""

from __future__ import annotations

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
