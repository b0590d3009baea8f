"""The "Real attacks" results tables (docs/results/real-attacks.md), in one command.

On the real neural-vocoder / zero-shot TTS set (the recipe of ``configs/real_vocoders.yaml``
on the manifest ``--source`` names, by default the ``vocoders_tts`` set where
``benchmarks/_real_sets.py`` expects it: development data that is never shipped) this
runs, in one go:

1. the classical yardsticks (LFCC and LTAS statistics + logistic regression) on the
   same utterances, splits and input clips as the detectors (``cl-spoof yardstick``);
2. ``cl-spoof run`` of the given strategies for the given seeds (joint, naive, DFWF,
   replay by default), seed by seed, the benchmark data decoded once;
3. the tables: final per-attack EER (mean ± std over seeds) beside the yardsticks,
   mean / pooled / matched EER, forgetting summary and the mean forgetting matrix of
   every continual strategy.

With ``--a01`` it also runs the real ASVspoof 2019 LA A01 check: the 200 shared
training files of speaker LA_0079 split by utterance (50 % of each class, numpy seed
13) into train and eval, joint training with the same recipe at 16 kHz, and the
yardsticks on that split.

``--ablation NAME`` runs an entry of ``benchmarks/index.yaml`` instead of ``--config``
(its base config with its changes; results under the entry's name, runs under
``runs/<that name>`` unless ``--name`` / ``--out`` say otherwise).

Outputs: the runs under ``--out`` (resumable: run the same command again to complete an
interrupted benchmark), ``benchmarks/results/real_attacks.json`` and ``.md``.
Usage: ``python -m benchmarks.studies.real_attacks [--seeds 0,1,2] [--strategies ...] [--a01]
[--ablation NAME] [--source MANIFEST]``, from the repository root.
Takes hours on 2 CPU cores (each continual run trains 12 experiences).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import _real_sets as rs
from benchmarks._common import REPO, RESULTS, machine
from benchmarks.index import ablation_config, entry
from cl_spoof.benchmark import load_benchmark_data
from cl_spoof.config import RunConfig, with_overrides
from cl_spoof.data.table import BONAFIDE, utterance_groups
from cl_spoof.metrics.eer import matched_eer_per_attack
from cl_spoof.metrics.score_files import read_asvspoof2019_scores
from cl_spoof.rundir import RunDir, run_dir_name
from cl_spoof.workflows.events import RunEvents
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import load_run_config
from cl_spoof.workflows.yardstick import run_yardstick

LA = REPO.parent / "shared" / "data" / "asvspoof2019_la_sample"
#: The real set of these studies (``benchmarks/_real_sets.py`` says where it is expected).
REAL_SET = "vocoders_tts"
A01_SPLIT_SEED = 13


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _events() -> RunEvents:
    return RunEvents(on_stage=_say)


def _pm(values: list[float]) -> str:
    """``mean ± std`` (population std over seeds; one seed: the value)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=0):.1f}"


def _yardstick(cfg: RunConfig, out: Path) -> dict:
    """The yardsticks' EERs (read back when ``out`` already holds them)."""
    if not (out / "yardstick.json").is_file():
        run_yardstick(cfg, ["lfcc", "ltas", "ltas128"], out, on_stage=_say)
    return json.loads((out / "yardstick.json").read_text())["yardsticks"]


def _final_row(run_dir: Path) -> pd.Series:
    """The last stage's per-attack EERs (%)."""
    matrix = pd.read_csv(run_dir / "eer_matrix.csv")
    return matrix.drop(columns=["stage", "trained_on"]).iloc[-1]


def _matched(run_dir: Path, groups: dict[str, str]) -> float | None:
    """Mean over attacks of the final stage's matched EER (%), or None without groups."""
    if not groups:
        return None
    finals = sorted((run_dir / "scores").glob("stage_*.txt"),
                    key=lambda p: int(p.stem.split("_")[1]))
    scores = read_asvspoof2019_scores(finals[-1])
    frame = pd.DataFrame({"attack": scores["attack"], "key": scores["key"],
                          "score": scores["score"], "group": scores["utt_id"].map(groups)})
    values = list(matched_eer_per_attack(frame).values())
    return 100 * float(np.mean(values)) if values else None


def benchmark(cfg: RunConfig, strategies: list[str], seeds: list[int], out: Path,
              train: bool = True) -> dict:
    """Yardsticks + runs on ``cfg``; every number those tables need.

    ``train=False`` only collects the runs already finished (the seeds of each
    strategy that have one; strategies without any are left out)."""
    ys = _yardstick(cfg, out / "yardstick")
    started = time.perf_counter()
    data = load_benchmark_data(cfg.data, seed=cfg.seed, on_stage=_say)
    for seed in seeds:  # seed by seed: a first pass over all strategies comes early
        for name in strategies:
            run_dir = out / "runs" / run_dir_name(name) / f"seed{seed}"
            status = RunDir(run_dir).status()
            if (status is not None and status.get("finished")) or not train:
                continue
            _say(f"{name}, seed {seed}")
            run_experiment(with_overrides(cfg, strategy={"name": name}, seed=seed), run_dir,
                           _events(), data=data,
                           resume=run_dir.is_dir() and any(run_dir.iterdir()))
    groups: dict[str, str] = {}
    if cfg.metrics.matched_by:
        g = utterance_groups(data.table, cfg.metrics.matched_by)
        groups = dict(zip(data.table["utt_id"], g, strict=True))
    attacks = [p.attack for p in data.plans]
    runs: dict[str, dict] = {}
    for name in strategies:
        per_seed = []
        for seed in seeds:
            run_dir = out / "runs" / run_dir_name(name) / f"seed{seed}"
            status = RunDir(run_dir).status()
            if status is None or not status.get("finished"):
                continue
            metrics = json.loads((run_dir / "metrics.json").read_text())
            metrics["seconds"] = status["seconds"]
            matrix = pd.read_csv(run_dir / "eer_matrix.csv")
            per_seed.append({"seed": seed, "final": _final_row(run_dir).to_dict(),
                             "matched_mean": _matched(run_dir, groups),
                             "metrics": metrics,
                             "matrix": matrix.to_dict("list")})
        if per_seed:
            runs[name] = {"seeds": per_seed}
    strategies = list(runs)
    labels = data.table["label"]
    return {"data": f"{cfg.data.source} ({len(data.table)} utterances, "
                    f"{int((labels == BONAFIDE).sum())} bona fide)",
            "config": {"sample_rate": cfg.data.sample_rate, "num_samples": cfg.data.num_samples,
                       "level": cfg.data.level, "preset": cfg.model.preset,
                       "first_epochs": cfg.train.first_epochs, "epochs": cfg.train.epochs,
                       "lr_schedule": cfg.train.lr_schedule,
                       "augment": cfg.train.augment is not None},
            "attacks": attacks, "strategies": strategies, "seeds": seeds,
            "yardsticks": ys, "runs": runs,
            "seconds_this_call": round(time.perf_counter() - started, 1)}


def _a01_manifest(out: Path) -> Path:
    """The shared A01 files of LA_0079, split by utterance; written to ``out``."""
    proto = LA / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt"
    rows = []
    for line in proto.read_text().splitlines():
        spk, utt, _, system, key = line.split()
        path = LA / "ASVspoof2019_LA_train" / "flac" / f"{utt}.flac"
        if path.is_file() and system in ("-", "A01"):
            rows.append({"path": str(path), "label": key, "attack": system, "speaker": spk})
    table = pd.DataFrame(rows).sort_values("path").reset_index(drop=True)
    table["split"] = "train"
    rng = np.random.default_rng(A01_SPLIT_SEED)
    for label in ("bonafide", "spoof"):
        idx = np.flatnonzero(table["label"].to_numpy() == label)
        table.loc[rng.choice(idx, size=len(idx) // 2, replace=False), "split"] = "eval"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.csv"
    table.to_csv(path, index=False)
    return path


def markdown(result: dict) -> str:
    """The tables of one :func:`benchmark` result."""
    attacks, names = result["attacks"], result["strategies"]
    ys = result["yardsticks"]
    head = "| | " + " | ".join(attacks) + " | mean | pooled | matched |\n"
    head += "|---" * (len(attacks) + 4) + "|\n"
    lines = []
    for name in names:
        seeds = result["runs"][name]["seeds"]
        cells = [_pm([s["final"][a] for s in seeds]) for a in attacks]
        cells.append(_pm([s["metrics"]["final_avg_eer"] for s in seeds]))
        cells.append(_pm([s["metrics"]["final_pooled_eer"] for s in seeds])
                     if all(s["metrics"].get("final_pooled_eer") is not None for s in seeds)
                     else "–")
        matched = [s["matched_mean"] for s in seeds]
        cells.append(_pm(matched) if all(m is not None for m in matched) else "–")
        lines.append(f"| {name} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}) | "
                     + " | ".join(cells) + " |")
    for name, y in ys.items():
        cells = [f"{y['per_attack'][a]:.1f}" for a in attacks]
        cells += [f"{y['mean']:.1f}", f"{y['pooled']:.1f}",
                  f"{y['matched_mean']:.1f}" if y.get("matched_mean") is not None else "–"]
        lines.append(f"| yardstick {name} | " + " | ".join(cells) + " |")
    text = [f"Data: {result['data']}; EER in %, final stage, mean ± std over seeds "
            "(population std).\n", head + "\n".join(lines) + "\n"]
    text.append("\n| strategy | final avg EER | BWT | max forgetting | run time (s) |\n"
                "|---|---|---|---|---|")
    for name in names:
        seeds = result["runs"][name]["seeds"]
        m = [s["metrics"] for s in seeds]

        def col(key: str, rows: list[dict] = m) -> str:
            vals = [r.get(key) for r in rows]
            return _pm([float(v) for v in vals]) if all(v is not None for v in vals) else "–"

        text.append(f"| {name} | {col('final_avg_eer')} | {col('bwt')} | "
                    f"{col('max_forgetting')} | {col('seconds')} |")
    for name in names:
        seeds = result["runs"][name]["seeds"]
        trained_on = seeds[0]["matrix"]["trained_on"]
        if len(trained_on) < 2:
            continue
        text.append(f"\n{name}: EER (%) of every attack after each stage (rows), mean over "
                    f"{len(seeds)} seed(s)\n")
        text.append("| after | " + " | ".join(attacks) + " |\n" + "|---" * (len(attacks) + 1)
                    + "|")
        for i, learned in enumerate(trained_on):
            vals = [np.mean([s["matrix"][a][i] for s in seeds]) for a in attacks]
            text.append(f"| {i + 1}: {learned} | "
                        + " | ".join("" if np.isnan(v) else f"{v:.1f}" for v in vals) + " |")
    return "\n".join(text) + "\n"


def real_set_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options every real-set benchmark shares: --config or --ablation, --source,
    --seeds, --out, --collect (:func:`real_set_config` reads them)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", type=Path, default=REPO / "configs" / "real_vocoders.yaml")
    which.add_argument("--ablation", metavar="NAME",
                       help="an entry of benchmarks/index.yaml (its base config with its "
                            "changes) instead of --config")
    parser.add_argument("--source", metavar="MANIFEST",
                        help="the real set's manifest, replacing the config's data.source "
                             f"(default: {rs.SETS[REAL_SET].default}; "
                             f"{rs.SETS[REAL_SET].rebuild})")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"runs folder (default: runs/{out}; with --ablation: "
                             "runs/<its results name>)")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: tables of the runs already finished")
    parser.set_defaults(default_out=out)
    return parser


def ablation_name(ablation: str) -> str:
    """The results name of an index entry (``abl_wd`` for ``wd``; the entry's own name
    when it lists no results)."""
    e = entry(ablation)
    return e.results_name or e.name


def real_set_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    need_source: bool = True) -> RunConfig:
    """The config of ``--config`` or ``--ablation`` with ``data.source`` the manifest of
    ``--source`` (by default the ``vocoders_tts`` set: the shipped config names no data);
    fills in ``args.out`` when not given. A missing manifest is a parser error unless
    ``need_source`` is false (then the config's own ``data.source`` is kept)."""
    if args.ablation:
        try:
            cfg = ablation_config(args.ablation)
        except KeyError as exc:
            parser.error(f"--ablation: {exc.args[0]}")
    else:
        cfg = load_run_config(args.config)
    if args.out is None:
        args.out = REPO / "runs" / (ablation_name(args.ablation) if args.ablation
                                    else args.default_out)
    try:
        source = rs.real_manifest(REAL_SET, args.source)
    except FileNotFoundError as exc:
        if need_source:
            parser.error(f"--source: {exc}")
        return cfg
    return with_overrides(cfg, data={"source": str(source)})


def main() -> None:
    parser = real_set_parser(__doc__, "real_attacks")
    parser.add_argument("--strategies", default="joint,naive,dfwf,replay")
    parser.add_argument("--name", default=None,
                        help="results file name in benchmarks/results (without .json/.md; "
                             "default: real_attacks, or the --ablation entry's)")
    parser.add_argument("--a01", action="store_true", help="also the real A01 check")
    parser.add_argument("--a01-only", action="store_true", help="only the real A01 check")
    args = parser.parse_args()
    cfg = real_set_config(parser, args, need_source=not args.a01_only)
    strategies = [s for s in args.strategies.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    payload: dict = {"machine": machine()}
    name = args.name or (ablation_name(args.ablation) if args.ablation else "real_attacks")
    if not args.a01_only:
        payload["real_vocoders_tts"] = benchmark(cfg, strategies, seeds, args.out / "real",
                                                 train=not args.collect)
    if args.a01 or args.a01_only:
        manifest = _a01_manifest(args.out / "a01")
        a01_cfg = with_overrides(cfg, data={"source": str(manifest), "attacks": ["A01"],
                                            "sample_rate": 16_000, "num_samples": 32_000},
                                 metrics={"matched_by": None})
        payload["a01"] = benchmark(a01_cfg, ["joint"], seeds, args.out / "a01",
                                  train=not args.collect)
        name = f"{name}_a01" if args.a01_only else name
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    md = [f"Measured {payload['machine']['date']} on {payload['machine']['cores']} cores "
          f"({payload['machine']['cpu']}, CUDA: {payload['machine']['cuda']}).\n"]
    for key in ("real_vocoders_tts", "a01"):
        if key in payload:
            md += [f"## {key}\n", markdown(payload[key])]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
