"""Run every speed benchmark (every module of benchmarks/speed/), one after another.

Usage: ``python -m benchmarks.run_all [--list]`` from the repository root (or ``make
bench``); results in benchmarks/results/. Each module runs with its default options,
``cache_throughput`` a second time at ASVspoof's 4-s input (``--num-samples 64600``), ``gpu``
with one preset and setting where there is no GPU (``bash benchmarks/speed/gpu_run.sh``
is its command for a GPU machine). Takes about an hour and a half on 2 CPU cores (30
minutes of it for the torchrun and ``compare --jobs`` runs, 20 for ``make_demo_time``'s
fresh clone, install and demo); run it on an otherwise idle machine, the numbers depend
on load.
The accuracy studies of benchmarks/studies/ are not run: they take hours, need the
shared development set or finished runs, and are listed with their commands in
benchmarks/index.yaml.
"""

from __future__ import annotations

import argparse
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEED = REPO / "benchmarks" / "speed"
#: Modules run more than once, with these extra options each time (default: once, none).
RUNS: dict[str, list[list[str]]] = {
    "cache_throughput": [[], ["--num-samples", "64600"]],
}
if shutil.which("nvidia-smi") is None:  # the GPU benchmark at a size a CPU finishes
    RUNS["gpu"] = [["--presets", "small", "--batches", "32", "--clips", "160", "--workers", "0",
                    "--amp", "off", "--compile", "off"]]


def commands() -> list[list[str]]:
    """The command of every run, in module-name order."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(SPEED)]) if not m.ispkg)
    return [[sys.executable, "-m", f"benchmarks.speed.{name}", *options]
            for name in names for options in RUNS.get(name, [[]])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    for cmd in commands():
        print(f"== python {' '.join(cmd[1:])}", flush=True)
        if not args.list:
            subprocess.run(cmd, check=True, cwd=REPO)


if __name__ == "__main__":
    main()
