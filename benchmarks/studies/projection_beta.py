"""What β RAWM and RWM apply, experience by experience, in a finished run.

RAWM and RWM change each step's update ``Δ`` of a constrained layer into
``Δ (P + β Q)``: ``β < 1`` damps the part inside the old experiences' input space,
``β > 1`` *amplifies* it (RWM's radian rule gives ``β > 1`` whenever genuine
utterances dominate a batch). The plugins do not store the β of every step, so
this script recomputes it: for each experience ``k ≥ 1`` it loads the run's
checkpoint after experience ``k − 1`` (the model at the start of experience
``k``), draws that experience's training batches as training does (batch size of
the run, random crops, augmentation, training-mode BatchNorm) and applies
:func:`~cl_spoof.strategies.methods.owm.projection.rwm_beta` and
:func:`~cl_spoof.strategies.methods.owm.projection.rawm_beta` to each batch. It approximates
the β a run saw (the model changes during the experience; the first batches are
exact). Any run directory works (its config names data, clip and batch size);
the run's own strategy does not matter::

    python -m benchmarks.studies.projection_beta RUN_DIR [--name NAME]

Writes ``benchmarks/results/projection_beta_<NAME>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks._common import write_result
from cl_spoof.benchmark import load_benchmark_data
from cl_spoof.benchmark.datasets import ClipSpec, build_benchmark
from cl_spoof.labels import BONAFIDE_TARGET as BONAFIDE_CLASS
from cl_spoof.models.loading import load_checkpoint
from cl_spoof.rundir import RunDir
from cl_spoof.strategies.methods.owm.projection import rawm_beta, rwm_beta
from cl_spoof.workflows.setup import load_run_config


def betas_of(run: Path, beta_max: float, seed: int) -> list[dict]:
    """Per experience ``k ≥ 1``: genuine share and RAWM / RWM β of its training batches."""
    cfg = load_run_config(run / "config.yaml")
    data = load_benchmark_data(cfg.data, seed=cfg.seed)
    bm = build_benchmark(data.table, data.waveforms, data.plans, ClipSpec.from_config(cfg))
    rows = []
    for k in range(1, len(bm.train_stream)):
        # experience k (from 0) starts from the model of trained stage k (from 1)
        model = load_checkpoint(RunDir(run).checkpoint_path(k)).model.train()
        loader = DataLoader(bm.train_stream[k].dataset, batch_size=cfg.train.batch_size,
                            shuffle=True, generator=torch.Generator().manual_seed(seed))
        share, rwm, rawm = [], [], []
        with torch.no_grad():
            for batch in loader:
                x, y = batch[0], batch[1]
                true = model(x).gather(1, y.view(-1, 1)).squeeze(1)
                signs = (y == BONAFIDE_CLASS).double() * 2.0 - 1.0
                share.append(float((y == BONAFIDE_CLASS).float().mean()))
                rwm.append(rwm_beta(true, signs, beta_max))
                rawm.append(rawm_beta(y, BONAFIDE_CLASS, "share", beta_max))
        b = np.asarray(rwm)
        rows.append({"experience": k, "attack": bm.train_stream[k].attack,
                     "batches": len(b), "genuine_share": float(np.mean(share)),
                     "rwm_beta_mean": float(b.mean()), "rwm_beta_min": float(b.min()),
                     "rwm_beta_max": float(b.max()), "rwm_share_above_1": float(np.mean(b > 1)),
                     "rawm_beta_mean": float(np.mean(rawm))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run directory (with checkpoints)")
    ap.add_argument("--name", default=None, help="result name (default: the run folder's)")
    ap.add_argument("--beta-max", type=float, default=10.0, help="owm_beta_max (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="batch order and crops")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = betas_of(args.run, args.beta_max, args.seed)
    name = args.name or args.run.name
    write_result(f"projection_beta_{name}", {"run": str(args.run), "beta_max": args.beta_max,
                                             "experiences": rows})
    print("| experience | attack | genuine share | RWM β mean (min–max) | RWM β > 1 "
          "| RAWM β mean |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['experience']} | {r['attack']} | {r['genuine_share']:.2f} "
              f"| {r['rwm_beta_mean']:.2f} ({r['rwm_beta_min']:.2f}–{r['rwm_beta_max']:.2f}) "
              f"| {100 * r['rwm_share_above_1']:.0f} % | {r['rawm_beta_mean']:.2f} |")


if __name__ == "__main__":
    main()
