"""Sampling at scale: peak memory does not grow with n, and a run killed with -9 resumes to the same folder.

    python -m benchmarks.bench_sample_scale memory [--small 1000] [--large 10000] [--threads 1] [--json out.json]
    python -m benchmarks.bench_sample_scale resume [--n 5000] [--kill-after 20] [--threads 1] [--json out.json]

``memory``: ``zoo sample ddgan --out-dir D -n small`` and ``-n large`` in this process (``benchmarks.timing``'s
``timed_call``: the kernel's peak RSS during the call above the RSS just before it, model loading included), the
ratio of the two peaks, and whether images 0..small-1 of both folders are byte-identical.

``resume``: ``zoo sample ddgan -n N --out-dir A`` uninterrupted; the same into B as a child process killed with
SIGKILL after ``--kill-after`` seconds, then rerun; reports how many images the kill left, how many the rerun
sampled (from its own output), leftover temporary files, and whether B equals A file for file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.timing import timed_call

MODEL = "ddgan"


def _sample(folder: Path, n: int, threads: int) -> str:
    from zoo_core.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["sample", MODEL, "-n", str(n), "--out-dir", str(folder), "--threads", str(threads), "--quiet"]
        )
    if code != 0:
        raise SystemExit(f"zoo sample exited {code}")
    return out.getvalue()


def _files(folder: Path, n: int | None = None) -> dict[str, bytes]:
    paths = sorted(folder.glob("[0-9]*.png"))
    return {p.name: p.read_bytes() for p in (paths if n is None else paths[:n])}


def memory(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rows = {}
    for n in (args.small, args.large):
        wall, cpu, peak, _ = timed_call(lambda n=n: _sample(root / f"n{n}", n, args.threads))
        rows[n] = {"n": n, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_extra_mb": peak}
        print(f"-n {n}: peak {peak:.0f} MB above the start, {wall:.0f} s", file=sys.stderr)
    same = _files(root / f"n{args.small}") == _files(root / f"n{args.large}", args.small)
    small, large = rows[args.small]["peak_extra_mb"], rows[args.large]["peak_extra_mb"]
    return {
        "rows": list(rows.values()),
        "peak_ratio_large_over_small": round(large / small, 3) if small and large else None,
        f"images_0_to_{args.small - 1}_byte_identical": same,
    }


def resume(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    zoo = [
        sys.executable,
        "-m",
        "zoo_core.cli",
        "sample",
        MODEL,
        "-n",
        str(args.n),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    subprocess.run([*zoo, "--out-dir", str(root / "A"), "--quiet"], check=True, env=env, capture_output=True)
    full_s = time.perf_counter() - start
    child = subprocess.Popen(
        [*zoo, "--out-dir", str(root / "B"), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(args.kill_after)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = len(_files(root / "B"))
    temporaries = [p.name for p in (root / "B").glob(".*.tmp")]
    rerun = subprocess.run(
        [*zoo, "--out-dir", str(root / "B"), "--quiet"], check=True, env=env, capture_output=True, text=True
    )
    said = [line for line in rerun.stderr.splitlines() if "already in" in line]
    return {
        "n": args.n,
        "uninterrupted_s": round(full_s, 1),
        "killed_after_s": args.kill_after,
        "images_after_kill": left,
        "temporary_files_after_kill": temporaries,
        "rerun_said": said[0] if said else None,
        "rerun_stdout": rerun.stdout.strip(),
        "temporary_files_after_rerun": [p.name for p in (root / "B").glob(".*.tmp")],
        "folders_identical": _files(root / "A") == _files(root / "B"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["memory", "resume"])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kill-after", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = (memory if args.what == "memory" else resume)(args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
