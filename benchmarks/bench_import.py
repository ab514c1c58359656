"""How fast `import zoo` and `zoo list` answer with every installed plugin, against `import torch` in one run.

    python benchmarks/bench_import.py [--repeats 7]

Each figure is the median wall time of a fresh interpreter (subprocess), minus nothing: what a user waits for.
Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CASES = {
    "python (empty)": "pass",
    "import zoo": "import zoo",
    "zoo list": "from zoo_core.cli import main; import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): main(['list'])",
    "import torch (peer)": "import torch",
}


def median_seconds(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    probe = "import sys, zoo; zoo.list_models(); print(int('torch' in sys.modules), len(zoo.list_plugins()))"
    torch_imported, plugins = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    results = {name: median_seconds(code, args.repeats) for name, code in CASES.items()}
    print(f"{'case':<22} {'median s':>9}")
    for name, seconds in results.items():
        print(f"{name:<22} {seconds:>9.3f}")
    print(
        f"plugins loaded: {plugins}; torch imported by `import zoo` + list_models(): {bool(int(torch_imported))}"
    )
    print(
        json.dumps(
            {
                "median_seconds": results,
                "plugins": int(plugins),
                "torch_imported": bool(int(torch_imported)),
                "zoo_list_over_import_torch": results["zoo list"] / results["import torch (peer)"],
            }
        )
    )


if __name__ == "__main__":
    main()
