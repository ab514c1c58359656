"""Sampling at scale: peak memory does not grow with n, and a run killed with -9 resumes to the same folder.

    python -m benchmarks.bench_sample_scale memory [--small 1000] [--large 10000] [--threads 1] [--json out.json]
    python -m benchmarks.bench_sample_scale resume [--n 5000] [--kill-after 20] [--threads 1] [--json out.json]
    python -m benchmarks.bench_sample_scale memory-procs [--small 2000] [--large 20000] [--threads 1] [--json out.json]
    python -m benchmarks.bench_sample_scale bad-output [--json out.json]

``memory``: ``zoo sample ddgan --out-dir D -n small`` and ``-n large`` in this process (``benchmarks.timing``'s
``timed_call``: the kernel's peak RSS during the call above the RSS just before it, model loading included), the
ratio of the two peaks, and whether images 0..small-1 of both folders are byte-identical.

``memory-procs``: the same two runs, each ``zoo sample`` in its own process under ``/usr/bin/time -v`` with
``OMP_NUM_THREADS`` set to ``--threads``: the kernel's maximum resident set size of each whole process (interpreter,
torch and model included, so nothing of one run is left in the other's), their ratio, and whether images
0..small-1 of both folders are byte-identical (``cmp`` of each pair).

``bad-output``: the output mistakes that must fail before any sampling (bad extension, unwritable ``--out``,
``-n 0``, a grid too large, an option the model does not take, an unknown flag), each ``zoo sample`` timed in its own process: exit code, wall
seconds, lines on stderr, and whether anything was written.

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


def _zoo() -> list[str]:
    """The ``zoo`` console script beside this interpreter (what a user runs), else ``python -m zoo_core.cli``."""
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zoo_core.cli"]


def _max_rss_mb(time_v_output: str) -> float:
    for line in time_v_output.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1]) / 1024
    raise SystemExit(f"no 'Maximum resident set size' in /usr/bin/time -v output:\n{time_v_output}")


def memory_procs(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    rows = {}
    for n in (args.small, args.large):
        folder = root / f"n{n}"
        command = [*_zoo(), "sample", MODEL, "--n", str(n), "--out-dir", str(folder), "--threads", str(args.threads)]
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
        rss = _max_rss_mb(done.stderr)
        shown = f"OMP_NUM_THREADS={args.threads} zoo sample {MODEL} --n {n} --out-dir D --threads {args.threads}"
        rows[n] = {"n": n, "command": shown, "wall_s": round(wall, 1), "max_rss_mb": round(rss, 1)}
        print(f"--n {n}: max RSS {rss:.0f} MB, {wall:.0f} s", file=sys.stderr)
    names = [f"{i:06d}.png" for i in range(args.small)]
    differ = [
        name
        for name in names
        if subprocess.run(
            ["cmp", "-s", str(root / f"n{args.small}" / name), str(root / f"n{args.large}" / name)]
        ).returncode
        != 0
    ]
    small, large = rows[args.small]["max_rss_mb"], rows[args.large]["max_rss_mb"]
    return {
        "rows": list(rows.values()),
        "max_rss_ratio_large_over_small": round(large / small, 3),
        f"images_{names[0]}_to_{names[-1]}_cmp_identical": not differ,
        "cmp_differing": differ[:10],
    }


def bad_output(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    blocked = root / "not-a-folder"
    blocked.write_text("a file where a folder is expected")
    cases = {
        "bad extension": ["--n", "4", "--out", str(root / "late.weird")],
        "unwritable --out": ["--n", "4", "--out", str(blocked / "grid.png")],
        "--n 0": ["--n", "0", "--out-dir", str(root / "zero")],
        "grid too large": ["--n", "100000", "--out", str(root / "grid.png")],
        "option the model does not take": ["--n", "4", "--out-dir", str(root / "opt"), "--guidance-scale", "3"],
        "unknown flag": ["--n", "4", "--out-dir", str(root / "flag"), "--frobnicate"],
    }
    rows = []
    for name, extra in cases.items():
        before = sorted(p.name for p in root.rglob("*"))
        start = time.perf_counter()
        done = subprocess.run([*_zoo(), "sample", MODEL, *extra], capture_output=True, text=True)
        wall = time.perf_counter() - start
        written = sorted(set(p.name for p in root.rglob("*")) - set(before))
        lines = done.stderr.strip().splitlines()
        shown = " ".join(a if not a.startswith(str(root)) else a.replace(str(root), "T") for a in extra)
        rows.append(
            {
                "case": name,
                "command": f"zoo sample {MODEL} {shown}",
                "exit": done.returncode,
                "wall_s": round(wall, 2),
                "stderr_lines": len(lines),
                "stderr": lines[0] if lines else "",
                "written": written,
            }
        )
        print(f"{name}: exit {done.returncode} in {wall:.2f} s, {len(lines)} line(s)", file=sys.stderr)
    ok = all(r["exit"] == 2 and r["wall_s"] < 3 and r["stderr_lines"] == 1 and not r["written"] for r in rows)
    return {"rows": rows, "all_exit_2_under_3_s_one_line_nothing_written": ok}


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
    parser.add_argument("what", choices=list(MODES))
    parser.add_argument("--small", type=int, help="default 1000 (memory) / 2000 (memory-procs)")
    parser.add_argument("--large", type=int, help="default 10000 (memory) / 20000 (memory-procs)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kill-after", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    procs = args.what == "memory-procs"
    args.small = args.small or (2000 if procs else 1000)
    args.large = args.large or (20000 if procs else 10000)
    with tempfile.TemporaryDirectory() as tmp:
        result = MODES[args.what](args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0


MODES = {"memory": memory, "memory-procs": memory_procs, "bad-output": bad_output, "resume": resume}

if __name__ == "__main__":
    sys.exit(main())
