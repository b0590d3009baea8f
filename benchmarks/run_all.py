"""Run every benchmark in this folder, one after another (results in benchmarks/results/).

Usage: ``python benchmarks/run_all.py`` (or ``make bench``). Takes about 55 minutes
on 2 CPU cores (30 of them for the torchrun and ``compare --jobs`` runs); run it on an
otherwise idle machine, the numbers depend on load. The accuracy benchmark on real
attacks (``real_attacks.py``, hours, needs the shared development set) runs separately.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [["cache_throughput.py"], ["cache_throughput.py", "--num-samples", "64600"],
           ["model_throughput.py"], ["dfwf_overhead.py"], ["field_baselines_overhead.py"],
           ["demo_run_time.py"],
           ["distributed_scaling.py"]]


def main() -> None:
    for script, *args in SCRIPTS:
        print(f"== {script} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE)


if __name__ == "__main__":
    main()
