"""End-to-end wall time of the default demo run (6 experiences, naive, eval after each stage).

Runs ``cl-spoof run --strategy naive`` in a subprocess exactly as a user would
(demo corpus already built; building it is timed separately by the first call
of ``cl-spoof data demo``). Target: <= 8 minutes on 2 CPU cores. Usage::

    python -m benchmarks.speed.demo_run_time [--strategy naive]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_result

BIN = Path(sys.executable).parent / "cl-spoof"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="naive")
    args = ap.parse_args()
    t0 = time.perf_counter()
    subprocess.run([str(BIN), "data", "demo"], check=True, capture_output=True)
    corpus_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run([str(BIN), "run", "--strategy", args.strategy, "--out", str(out)],
                       check=True, capture_output=True)
        run_s = time.perf_counter() - t0
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        metrics = json.loads((out / "metrics.json").read_text())
    rows = {"strategy": args.strategy, "corpus_ready_s": round(corpus_s, 1),
            "run_s": round(run_s, 1), "target_s": 480, "peak_rss_mib": round(peak_mib),
            "final_avg_eer": metrics["final_avg_eer"]}
    print(f"demo run ({args.strategy}): {run_s:.0f} s end to end (target <= 480 s); "
          f"corpus check/build {corpus_s:.0f} s; peak resident memory {peak_mib:.0f} MiB")
    print(f"-> {write_result(f'demo_run_time_{args.strategy}', rows)}")


if __name__ == "__main__":
    main()
