"""Wall and CPU time of every phase of ``make demo`` on a fresh clone, phase by phase.

A fresh clone of this checkout (its committed HEAD) in ``--workdir``, then, each phase
a separate command so that a busy machine can be measured phase by phase (``--phases``;
a later call reuses what earlier ones left in ``--workdir``):

- ``clone``: ``git clone`` of the checkout;
- ``venv``: ``python3 -m venv .venv`` (the Makefile's interpreter, ``$PYTHON``);
- ``install``: ``pip install --upgrade pip`` and ``pip install -e '.[test]'`` with an
  empty pip cache, as the Makefile does (downloads: the network counts);
- ``corpus``: ``cl-spoof data demo`` with an empty cl-spoof cache (builds the corpus);
- ``naive``, ``dfwf``, ``joint``: one ``cl-spoof run`` of each strategy the demo
  compares, as ``cl-spoof demo`` runs them one after another (the corpus and waveform
  cache built);
- ``report``: ``cl-spoof report`` of those three runs;
- ``demo``: ``cl-spoof demo`` whole (the corpus built), for comparison with the sum;
- ``make``: ``make demo`` whole, as a user runs it on a fresh clone: no ``.venv``, empty
  pip and cl-spoof caches (venv, install, corpus, the runs side by side, the report).

Each phase records wall time, the CPU time of its processes (user + system: far less
sensitive to other load than wall time) and the 1-minute load average before and
after. Results are merged into ``benchmarks/results/make_demo_time.json`` (a phase
measured again replaces its earlier record). Usage::

    python -m benchmarks.speed.make_demo_time [--workdir /tmp/fresh] [--phases clone,venv,...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import REPO, RESULTS, machine

PHASES = ("clone", "venv", "install", "corpus", "naive", "dfwf", "joint", "report", "demo",
          "make")
RESULT = RESULTS / "make_demo_time.json"


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def commands(phase: str, work: Path) -> list[list[str]]:
    """The commands of ``phase`` in the clone ``work / "clone"``."""
    clone = work / "clone"
    py, cli = str(clone / ".venv" / "bin" / "python"), str(clone / ".venv" / "bin" / "cl-spoof")
    runs = work / "runs"
    if phase == "clone":
        return [["git", "clone", "--quiet", str(REPO), str(clone)]]
    if phase == "venv":
        return [[os.environ.get("PYTHON", "python3"), "-m", "venv", str(clone / ".venv")]]
    if phase == "install":
        return [[py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                [py, "-m", "pip", "install", "--quiet", "-e", f"{clone}[test]"]]
    if phase == "corpus":
        return [[cli, "data", "demo"]]
    if phase in ("naive", "dfwf", "joint"):
        return [[cli, "run", "--strategy", phase, "--out", str(runs / phase)]]
    if phase == "report":
        return [[cli, "report", *(str(runs / s) for s in ("naive", "dfwf", "joint")),
                 "--out", str(work / "report")]]
    if phase == "demo":
        return [[cli, "demo", "--out", str(work / "demo")]]
    if phase == "make":
        return [["make", "demo", f"PYTHON={os.environ.get('PYTHON', 'python3')}"]]
    raise ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")


def prepare(phase: str, work: Path) -> None:
    """Leave no result of an earlier measurement of ``phase`` behind."""
    targets = {"clone": [work / "clone"], "venv": [work / "clone" / ".venv"],
               "corpus": [work / "cache"], "report": [work / "report"],
               "demo": [work / "demo"], "install": [work / "pipcache"],
               "make": [work / "clone" / ".venv", work / "clone" / "runs", work / "cache",
                        work / "pipcache"]}
    for target in targets.get(phase, [work / "runs" / phase]):
        shutil.rmtree(target, ignore_errors=True)


def measure(phase: str, work: Path) -> dict:
    prepare(phase, work)
    env = {**os.environ, "CL_SPOOF_CACHE_DIR": str(work / "cache"),
           "PIP_CACHE_DIR": str(work / "pipcache")}
    env.pop("PYTHONPATH", None)  # the clone's own install, not this checkout
    record = {"load_before": _load(), "commands": []}
    cpu0, t0 = _cpu_children(), time.perf_counter()
    for cmd in commands(phase, work):
        record["commands"].append(" ".join(cmd))
        subprocess.run(cmd, check=True, cwd=work / "clone" if phase != "clone" else work,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record.update(wall_s=round(time.perf_counter() - t0, 1),
                  cpu_s=round(_cpu_children() - cpu0, 1), load_after=_load())
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the clone, its venv, cache and runs go (default: a temporary "
                    "folder, removed afterwards)")
    ap.add_argument("--phases", default=",".join(p for p in PHASES if p not in ("demo", "make")),
                    help=f"of {', '.join(PHASES)} (default: all but demo and make, the "
                    "sum's checks)")
    args = ap.parse_args()
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), args.phases)
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.workdir.resolve(), args.phases)


def run(work: Path, phases: str) -> None:
    payload = json.loads(RESULT.read_text()) if RESULT.is_file() else {"phases": {}}
    for phase in [p for p in phases.split(",") if p]:
        record = measure(phase, work)
        record["machine"] = machine()
        record["commit"] = subprocess.run(
            ["git", "-C", str(work / "clone"), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True).stdout.strip()
        payload["phases"][phase] = record
        RESULTS.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"{phase}: {record['wall_s']:.0f} s wall, {record['cpu_s']:.0f} s CPU, load "
              f"{record['load_before']} -> {record['load_after']}", flush=True)
    print(f"-> {RESULT}", file=sys.stderr)


if __name__ == "__main__":
    main()
