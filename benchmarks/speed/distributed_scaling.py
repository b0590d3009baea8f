"""Data-parallel runs (torchrun) vs one process, and ``compare --jobs`` vs one run at a time.

1. For every seed: ``cl-spoof run CONFIG`` in one process with ``train.threads``
   = the machine's cores, then ``torchrun --standalone --nproc_per_node N -m
   cl_spoof run CONFIG`` with ``train.threads`` = cores / N. Records wall times,
   both EER matrices and their per-cell difference.
2. ``cl-spoof compare`` of two strategies x seeds with ``--jobs 1`` (threads =
   cores) and ``--jobs N`` (threads = cores / N, a process per run). Records
   wall times and final EERs (equal only up to the floating-point order that a
   different thread count brings; with equal threads they are bit-identical).

Usage::

    python -m benchmarks.speed.distributed_scaling [--config demo] [--strategy dfwf] \\
        [--seeds 2] [--nproc 2] [--compare-epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks._common import write_result
from cl_spoof.config import to_yaml, with_overrides
from cl_spoof.workflows.setup import load_run_config

BIN = Path(sys.executable).parent / "cl-spoof"


def _config(src: str | None, path: Path, **train) -> Path:
    cfg = with_overrides(load_run_config(Path(src) if src else None), train=train)
    path.write_text(to_yaml(cfg))
    return path


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-4000:]}")
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="YAML config (default: the demo config)")
    ap.add_argument("--strategy", default="dfwf")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--compare-epochs", type=int, default=2,
                    help="epochs per experience in the compare part (shorter than a run)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    per_proc = max(1, cores // args.nproc)
    subprocess.run([str(BIN), "data", "demo"], check=True, capture_output=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        one = _config(args.config, tmp_dir / "one.yaml", threads=cores)
        many = _config(args.config, tmp_dir / "many.yaml", threads=per_proc)
        for seed in range(args.seeds):
            common = ["--strategy", args.strategy, "--seed", str(seed)]
            single_s = _timed([str(BIN), "run", str(one), *common,
                               "--out", str(tmp_dir / f"single{seed}")])
            ddp_s = _timed([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={args.nproc}", "-m", "cl_spoof", "run",
                            str(many), *common, "--out", str(tmp_dir / f"ddp{seed}")])
            a = pd.read_csv(tmp_dir / f"single{seed}" / "eer_matrix.csv", index_col="stage")
            b = pd.read_csv(tmp_dir / f"ddp{seed}" / "eer_matrix.csv", index_col="stage")
            attacks = [c for c in a.columns if c != "trained_on"]
            diff = (b[attacks] - a[attacks]).abs()
            final = {k: round(float(m[attacks].iloc[-1].mean()), 2)
                     for k, m in (("single", a), ("ddp", b))}
            runs.append({"seed": seed, "single_s": single_s, "ddp_s": ddp_s,
                         "final_avg_eer": final,
                         "max_abs_cell_diff": round(float(diff.to_numpy().max()), 2),
                         "mean_abs_cell_diff": round(float(diff.to_numpy().mean()), 2),
                         "single_matrix": a[attacks].round(2).to_dict("split"),
                         "ddp_matrix": b[attacks].round(2).to_dict("split")})
            print(f"seed {seed}: one process {single_s:.0f} s, torchrun x{args.nproc} "
                  f"{ddp_s:.0f} s; final avg EER {final['single']:.2f} vs {final['ddp']:.2f} %;"
                  f" cells differ by {runs[-1]['mean_abs_cell_diff']:.2f} pts on average, "
                  f"{runs[-1]['max_abs_cell_diff']:.2f} at most", flush=True)

        short_one = _config(args.config, tmp_dir / "c1.yaml", threads=cores,
                            epochs=args.compare_epochs, first_epochs=args.compare_epochs)
        short_many = _config(args.config, tmp_dir / "cn.yaml", threads=0,
                             epochs=args.compare_epochs, first_epochs=args.compare_epochs)
        compare = ["compare", "--strategies", f"naive,{args.strategy}", "--seeds",
                   str(args.seeds)]
        seq_s = _timed([str(BIN), *compare[:1], str(short_one), *compare[1:],
                        "--out", str(tmp_dir / "cmp1")])
        par_s = _timed([str(BIN), *compare[:1], str(short_many), *compare[1:],
                        "--out", str(tmp_dir / f"cmp{args.nproc}"), "--jobs", str(args.nproc)])
        same = [json.loads(p.read_text())["final_avg_eer"] for p in
                sorted((tmp_dir / "cmp1").glob("*/seed*/metrics.json"))]
        fan = [json.loads(p.read_text())["final_avg_eer"] for p in
               sorted((tmp_dir / f"cmp{args.nproc}").glob("*/seed*/metrics.json"))]
    print(f"compare of {2 * args.seeds} short runs: one at a time {seq_s:.0f} s, "
          f"--jobs {args.nproc} {par_s:.0f} s")
    payload = {"config": args.config or "demo", "strategy": args.strategy,
               "nproc": args.nproc, "cores": cores, "threads_single": cores,
               "threads_per_process": per_proc, "runs": runs,
               "compare": {"runs": 2 * args.seeds, "epochs": args.compare_epochs,
                           "jobs_1_s": seq_s, f"jobs_{args.nproc}_s": par_s,
                           "final_avg_eer_jobs_1": same,
                           f"final_avg_eer_jobs_{args.nproc}": fan}}
    print(f"-> {write_result('distributed_scaling', payload)}")


if __name__ == "__main__":
    main()
