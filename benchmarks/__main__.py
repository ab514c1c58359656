"""``python -m benchmarks run [--quick] [--only ROW,...] [--json results.json]`` and
``python -m benchmarks readme [--json results.json] [--readme README.md]``."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_rows(names: list[str], size: str, *, repeats: int | None = None) -> list[dict[str, Any]]:
    """Build, time and check each row in turn (one row's models in memory at a time)."""
    from benchmarks.rows import ROWS
    from benchmarks.timing import interleave

    results = []
    for name in names:
        started = time.perf_counter()
        row = ROWS[name](size)
        timings, outputs = interleave(row.cases, repeats=repeats or row.repeats, warmup=row.warmup)
        figures = row.check(outputs) if row.check else {}
        first = next(iter(timings.values()))
        cases = {label: t.as_dict() for label, t in timings.items()}
        if row.child_peak:  # the work ran in a child process, which reported its own high-water mark
            for label in cases:
                cases[label]["peak_extra_mb"] = outputs[label]
        peer = list(timings)[1]
        results.append(
            {
                "name": row.name,
                "title": row.title,
                "cases": cases,
                # each case against the peer's time: > 1 means faster than the peer
                "ratios": {label: timings[peer].wall_s / t.wall_s for label, t in timings.items()},
                "cpu_ratio": timings[peer].cpu_s / first.cpu_s,
                "items_per_call": row.items,
                "unit": row.unit,
                "figures": figures,
                "info": row.info,
                "seconds": time.perf_counter() - started,
            }
        )
        ratio = timings[peer].wall_s / first.wall_s
        print(f"{name}: ours {first.wall_s:.3g} s, {peer} {timings[peer].wall_s:.3g} s, ratio {ratio:.2f} "
              f"({results[-1]['seconds']:.0f} s)", file=sys.stderr)  # fmt: skip
        del row, outputs
        gc.collect()
    return results


def main(argv: list[str] | None = None) -> int:
    from benchmarks.rows import ROWS

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the peer comparisons and print (or write) their JSON")
    run.add_argument(
        "--quick", action="store_true", help="smaller batches and fewer repeats (under 5 minutes)"
    )
    run.add_argument("--size", choices=["tiny", "quick", "full"], help="override: tiny is the test suite's")
    run.add_argument("--only", help=f"comma-separated rows of: {', '.join(ROWS)}")
    run.add_argument("--repeats", type=int, help="timed repeats per case (default: each row's own)")
    run.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    run.add_argument("--json", type=Path, help="write the results here")
    readme = sub.add_parser("readme", help="write the README's performance table from a results JSON")
    readme.add_argument("--json", type=Path, default=Path("results.json"))
    readme.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)

    if args.command == "readme":
        from benchmarks.report import write_readme

        write_readme(json.loads(args.json.read_text(encoding="utf-8")), args.readme)
        print(f"wrote the performance table of {args.json} into {args.readme}")
        return 0

    names = args.only.split(",") if args.only else list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:  # before any work
        parser.error(f"unknown rows {unknown}; the rows are: {', '.join(ROWS)}")
    if args.json is not None and not args.json.parent.exists():
        parser.error(f"--json: folder {args.json.parent} does not exist")
    import torch

    from benchmarks.machine import describe
    from benchmarks.report import table

    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or ("quick" if args.quick else "full")
    results = {
        "machine": describe(args.threads),
        "quick": size != "full",
        "size": size,
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": run_rows(names, size, repeats=args.repeats),
    }
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
