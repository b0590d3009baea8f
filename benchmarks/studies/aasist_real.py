"""The official pretrained AASIST-L on real vocoders and TTS: zero-shot, joint and continual.

On ``configs/real_vocoders.yaml``'s data and twelve experiences (the shared
``real_vocoders_tts`` set, ``--data``), with the input the authors' model takes (16 kHz,
64,600 samples, level as decoded, no augmentation) and, on a CPU, the **frozen-encoder
path**: the sinc front end and residual encoder keep the official weights and their
features are computed once per clip (``train.feature_cache`` with a shared
``train.feature_cache_dir``); the graph-attention back end learns. This runs, resumably:

- ``joint_official``: joint training from the official weights (stage 0 = zero-shot);
- ``joint_random``: the same back-end training over a randomly initialised, frozen
  encoder (one draw, written to ``random_init.pt``): what the pretrained features bring;
- ``joint_small``: the ``small`` preset trained whole from scratch on the same input;
- ``continual``: naive, DFWF, replay and RegO from the official weights, with the EER on
  the shared ASVspoof 2019 LA sample (``--la``, the pretraining's own data) after every
  stage: the forgetting of the pretraining;
- the LTAS and LFCC yardsticks on the same utterances.

``--part`` picks what to run (repeatable; default all, in the order above); ``--collect``
trains nothing and writes the tables of the runs finished so far. Outputs: the runs under
``--out`` (default ``runs/aasist_real``), ``benchmarks/results/aasist_real.json`` and
``.md``. Usage: ``python -m benchmarks.studies.aasist_real [--seeds 0,1,2] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _real_sets as rs
from benchmarks._common import REPO
from benchmarks.index import ablation_config
from cl_spoof.config import RunConfig, override_config, to_dict

MODULE = "benchmarks.studies.aasist_real"
NAME = "aasist_real"
TITLE = "The official AASIST-L on real vocoders and TTS: zero-shot, joint and continual"
SHARED = REPO.parent / "shared"
PARTS = ("joint_official", "joint_random", "joint_small", "continual")
CONTINUAL = ("naive", "dfwf", "replay", "rego")
LA_A01 = "pretrained:A01"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=rs.SETS["vocoders_tts"].default,
                    help="the real_vocoders_tts manifest")
    ap.add_argument("--weights", type=Path,
                    default=SHARED / "models" / "aasist" / "AASIST-L.pth",
                    help="the official AASIST-L state dict")
    ap.add_argument("--la", type=Path,
                    default=SHARED / "data" / "asvspoof2019_la_sample",
                    help="ASVspoof 2019 LA data (corpus root) the pretraining's EER is "
                         "measured on after every stage")
    ap.add_argument("--ablation", default=NAME, metavar="NAME",
                    help="the entry of benchmarks/index.yaml whose config the runs use "
                         f"(default {NAME})")
    ap.add_argument("--part", action="append", choices=PARTS, default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (compare --jobs)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="change a config key (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / NAME)
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: tables of the runs finished so far")
    return ap


def random_init(out: Path) -> Path:
    """A randomly initialised AASIST-L state dict (torch seed 0), written once."""
    import torch

    from cl_spoof.infra.files import atomic_write_with
    from cl_spoof.models import build_model

    path = out / "random_init.pt"
    if not path.is_file():
        torch.manual_seed(0)
        state = build_model("aasist_l", sample_rate=16000).state_dict()
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_with(path, lambda tmp: torch.save(state, tmp))
    return path


def configs(args: argparse.Namespace) -> dict[str, RunConfig]:
    """The config of every part (``--ablation``'s entry of ``benchmarks/index.yaml`` and
    the paths; ``--set`` last)."""
    base = ablation_config(args.ablation)
    common = [f"data.source={args.data}", f"train.feature_cache_dir={args.out / 'features'}",
              *args.overrides]
    official = override_config(base, [f"model.init={args.weights}",
                                      f"data.pretrained_eval={args.la}",
                                      "data.allow_missing=true",  # the LA sample is partial
                                      *common], "--set")
    random = override_config(base, [f"model.init={random_init(args.out)}", *common], "--set")
    small = override_config(base, ["model.preset=small", "model.init=null",
                                   "train.trainable=[]", "train.feature_cache=false",
                                   f"data.source={args.data}", *args.overrides], "--set")
    return {"joint_official": official, "joint_random": random, "joint_small": small,
            "continual": official}


def strategies(part: str) -> list[str]:
    return list(CONTINUAL) if part == "continual" else ["joint"]


def prepare(cfg: RunConfig, out: Path) -> None:
    """``groups.csv``: each utterance's sub-corpus, for the matched EER."""
    if (out / rs.GROUPS_FILE).is_file() or not cfg.metrics.matched_by:
        return
    from cl_spoof.benchmark.loading import read_run_table
    from cl_spoof.data.table import utterance_groups

    table, _ = read_run_table(cfg.data)
    out.mkdir(parents=True, exist_ok=True)
    rs.write_groups(out, table["utt_id"], utterance_groups(table, cfg.metrics.matched_by))


def train(cfgs: dict[str, RunConfig], parts: Sequence[str], seeds: Sequence[int], out: Path,
          jobs: int) -> None:
    """Yardsticks, then every part (a finished run is never redone)."""
    from cl_spoof.workflows.compare import run_compare
    from cl_spoof.workflows.yardstick import run_yardstick

    prepare(cfgs["continual"], out)
    if rs.read_yardsticks(out / "yardstick") is None:
        rs.say("yardsticks")
        run_yardstick(cfgs["continual"], rs.YARDSTICKS, out / "yardstick", on_stage=rs.say)
    for part in parts:
        rs.say(part)
        folder = out / part
        run_compare(cfgs[part], strategies(part), seeds, folder, rs.events(),
                    resume=(folder / "compare.json").is_file(), jobs=jobs)


def _la(run: rs.FinishedRun) -> list[float | None]:
    """EER (%) on the LA sample's A01 against its bona fide at every stage (0 first)."""
    import pandas as pd

    from cl_spoof.rundir import RunDir

    matrix = RunDir(run.path).read_matrix()
    if LA_A01 not in matrix.columns:
        return []
    return [None if pd.isna(v) else float(v) for v in matrix[LA_A01]]


def _stage0(run: rs.FinishedRun) -> dict[str, float]:
    """The zero-shot row (stage 0) of the run's matrix, per attack."""
    from cl_spoof.rundir import RunDir

    matrix = RunDir(run.path).read_matrix()
    row = matrix[matrix["stage"] == 0]
    return {} if row.empty else {a: float(row.iloc[0][a]) for a in run.attacks}


def collect(cfgs: dict[str, RunConfig], seeds: Sequence[int], out: Path) -> dict[str, Any]:
    """Every number of the tables from the runs finished under ``out``."""
    groups = rs.read_groups(out)
    parts: dict[str, Any] = {}
    zero_shot: dict[str, Any] = {}
    for part in PARTS:
        clip = cfgs[part].data.num_samples * 4
        for name, done in rs.compare_runs(out / part, strategies(part), seeds, groups,
                                          clip).items():
            label = name if part == "continual" else part
            la = [_la(r) for r in done]
            parts[label] = {
                "seeds": [r.seed for r in done],
                "final_avg_eer_matched": [rs.mean_std(list(r.final_matched.values()))["mean"]
                                          for r in done],
                "final_avg_eer_pooled": [r.metrics.get("final_avg_eer") for r in done],
                "bwt_matched": [r.matched_metrics.get("bwt") for r in done],
                "max_forgetting_matched": [r.matched_metrics.get("max_forgetting")
                                           for r in done],
                "la_a01_eer_per_stage": la,
                "la_a01_eer_final": [v[-1] if v else None for v in la],
                "la_a01_eer_max": [max(rs.finite(v[1:]), default=None) for v in la],
                "per_system_matched": {a: [r.final_matched.get(a) for r in done]
                                       for a in (done[0].attacks if done else [])},
                "seconds": [r.seconds for r in done],
                "runs": [r.to_json() for r in done],
            }
            if part == "joint_official" and done:
                zero_shot = {"pooled": _stage0(done[0]), "la_a01": la[0][0] if la[0] else None}
    naive = parts.get("naive")
    for name in CONTINUAL:
        if name in parts and name != "naive" and naive is not None:
            parts[name]["welch_vs_naive"] = {
                key: rs.welch(parts[name][key], naive[key])
                for key in ("final_avg_eer_matched", "final_avg_eer_pooled", "la_a01_eer_final")}
    ys = rs.read_yardsticks(out / "yardstick") or {}
    yardsticks = {n: {"what": y.get("what"), "mean": y.get("mean"),
                      "matched_mean": y.get("matched_mean"), "matched": y.get("matched", {})}
                  for n, y in ys.items()}
    return {"parts": parts, "zero_shot": zero_shot, "yardsticks": yardsticks}


def tables(result: dict[str, Any]) -> list[rs.Table]:
    parts, ys = result["parts"], result["yardsticks"]
    zs = result["zero_shot"]
    zero = rs.Table("Zero-shot: the official AASIST-L before any training",
                    ["", "mean EER % (pooled)", "EER % on LA A01"],
                    notes="Stage 0 of the runs from the official weights (every seed scores "
                          "the same model); pooled: each system against every test bona fide.")
    if zs:
        zero.rows.append(["official AASIST-L", rs.pm([rs.mean_std(list(
            zs["pooled"].values()))["mean"]]), rs.pm([zs.get("la_a01")], 2)])
    joint = rs.Table(
        "Joint training: pretrained encoder against a random one and the small preset",
        ["run", "seeds", "mean EER % matched", "mean EER % pooled", "EER % on LA A01",
         "wall time (min)"],
        notes="Mean ± std over seeds. joint_official / joint_random: AASIST-L with its "
              "encoder frozen (official / random weights), the graph back end trained; "
              "joint_small: the small preset trained whole. Matched: each system against "
              "the bona fide of its own sub-corpus.")
    for name in ("joint_official", "joint_random", "joint_small"):
        if name in parts:
            s = parts[name]
            joint.rows.append([name, str(len(s["seeds"])), rs.pm(s["final_avg_eer_matched"]),
                               rs.pm(s["final_avg_eer_pooled"]),
                               rs.pm(s["la_a01_eer_final"], 2) if any(
                                   v is not None for v in s["la_a01_eer_final"]) else "–",
                               rs.pm([None if v is None else v / 60 for v in s["seconds"]])])
    for name, y in ys.items():
        joint.rows.append([f"yardstick {name}", "–", rs.pm([y["matched_mean"]]),
                           rs.pm([y["mean"]]), "–", "–"])
    cont = rs.Table(
        "Continual from the official weights: twelve systems in turn",
        ["strategy", "seeds", "final avg EER % matched", "p vs naive", "final avg EER % pooled",
         "BWT (pts)", "max forgetting (pts)", "LA A01 EER % final", "LA A01 EER % worst stage",
         "p vs naive (LA)", "wall time (min)"],
        notes="Mean ± std over seeds. LA A01: the 100 A01 spoofs against the 100 bona fide of "
              "the shared ASVspoof 2019 LA sample (the pretraining's data), after the last "
              "stage and at its worst stage. p: Welch's t-test against naive.")
    for name in CONTINUAL:
        if name not in parts:
            continue
        s = parts[name]
        w = s.get("welch_vs_naive") or {}
        cont.rows.append([name, str(len(s["seeds"])), rs.pm(s["final_avg_eer_matched"]),
                          rs.p_text(w.get("final_avg_eer_matched")),
                          rs.pm(s["final_avg_eer_pooled"]),
                          rs.pm(s["bwt_matched"], signed=True),
                          rs.pm(s["max_forgetting_matched"]),
                          rs.pm(s["la_a01_eer_final"], 2), rs.pm(s["la_a01_eer_max"], 2),
                          rs.p_text(w.get("la_a01_eer_final")),
                          rs.pm([None if v is None else v / 60 for v in s["seconds"]])])
    stages = rs.Table("EER % on LA A01 after every stage (mean over seeds)",
                      ["strategy", *[str(k) for k in range(13)]],
                      notes="Stage 0: the official model; stage k: after the k-th system.")
    for name in CONTINUAL:
        if name in parts and parts[name]["la_a01_eer_per_stage"]:
            per = parts[name]["la_a01_eer_per_stage"]
            stages.rows.append([name, *[rs.pm([seed[k] for seed in per if k < len(seed)], 2)
                                        for k in range(len(per[0]))]])
    return [zero, joint, cont, stages]


def describe(cfgs: dict[str, RunConfig], args: argparse.Namespace) -> str:
    cfg = cfgs["continual"]

    return (f"Data: `{args.data.parent.name}` (LibriTTS bona fide, five GAN "
            f"vocoders of the UnivNet test, five of the FastFit test, StyleTTS 2 and F5-TTS; "
            f"speaker-disjoint train / eval), twelve experiences, oldest first; "
            f"LA: `{args.la.name}` (ASVspoof 2019 LA files). "
            f"Input {cfg.data.sample_rate} Hz, {cfg.data.num_samples} samples, level "
            f"{cfg.data.level}, no augmentation. Frozen-encoder path (CPU): trainable "
            f"{', '.join(cfg.train.trainable)}; epochs {cfg.train.first_epochs} on the first "
            f"experience (and joint), {cfg.train.epochs} on each later one.")


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    for what, path in (("--data", args.data), ("--weights", args.weights), ("--la", args.la)):
        if not path.exists():
            ap.error(f"{what}: {path} does not exist")
    cfgs = configs(args)
    seeds = [int(s) for s in rs.parse_list(args.seeds)]
    parts = args.part or list(PARTS)
    if not args.collect:
        train(cfgs, parts, seeds, args.out, args.jobs)
    result = collect(cfgs, seeds, args.out)
    payload = {"title": TITLE, "description": describe(cfgs, args),
               "command": rs.command_line(MODULE, argv), "runs": str(args.out),
               "config": {"base": args.ablation, "overrides": args.overrides,
                          "resolved": {p: to_dict(c) for p, c in cfgs.items()}},
               **result}
    path = rs.write_results(NAME, payload, tables(result), payload["description"])
    rs.say(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
