"""The continual comparison on the three real sets, families of systems learned in turn.

On ``configs/real_sequence.yaml`` (its three sources pointed at the manifests given by
``--vocoders-tts``, ``--yourtts`` and ``--vctk-vc``; ``benchmarks/_real_sets.py`` says how
to rebuild them) this runs, resumably:

1. the yardsticks (LFCC and LTAS statistics, full band and 0-4 kHz) on the same
   utterances and splits, fitted on every family's training rows (``cl-spoof yardstick``);
2. ``cl-spoof compare`` of the strategies over the seeds, ``--jobs`` runs at a time;
3. the tables: final average EER (matched: each system against the bona fide of its own
   source; and against every test bona fide), BWT and maximum forgetting of the matched
   matrix, Welch's t-test of every strategy against naive over the seeds, cost (wall
   time, what the strategy keeps between families); the final matched EER per family and
   per system, beside the yardsticks.

``--ablation NAME`` runs an entry of ``benchmarks/index.yaml`` whose base is
``configs/real_sequence.yaml`` (DFWF's ``kd_weight`` and ``psa_weight``, ...): results
under the entry's name, runs under ``runs/<that name>``. ``--set KEY=VALUE`` changes the
config further (a smoke test: ``--set train.epochs=1``). ``--collect`` trains nothing and
writes the tables of the runs finished so far.

Outputs: the runs under ``--out`` (default ``runs/real_sequence``; run the same command
again to complete it), ``benchmarks/results/<name>.json`` and ``.md``.
Usage: ``python -m benchmarks.studies.real_sequence [--seeds 0,1,2,3,4] [--jobs 2]
[--strategies ...] [--collect]``, from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _real_sets as rs
from benchmarks._common import REPO
from benchmarks.index import ablation_config, entry
from cl_spoof.config import RunConfig, override_config, to_dict
from cl_spoof.workflows.setup import load_run_config

MODULE = "benchmarks.studies.real_sequence"
STRATEGIES = ("joint", "naive", "dfwf", "replay", "dfwf+replay", "rego", "ewc", "lwf")
CONFIG = REPO / "configs" / "real_sequence.yaml"
TITLE = "Continual learning over three real sets, one family of systems at a time"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--config", type=Path, default=CONFIG)
    which.add_argument("--ablation", metavar="NAME",
                       help="an entry of benchmarks/index.yaml (its base config with its "
                            "changes) instead of --config")
    rs.add_set_options(ap)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (compare --jobs)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="change a config key (repeatable)")
    ap.add_argument("--out", type=Path, default=None,
                    help="runs folder (default: runs/real_sequence, or runs/<entry's results "
                         "name> with --ablation)")
    ap.add_argument("--name", default=None, help="results name (default: real_sequence, or "
                                                 "the --ablation entry's)")
    ap.add_argument("--naive-from", type=Path, default=None, metavar="RUNS",
                    help="the runs folder of another real_sequence study (same data and "
                         "seeds) whose naive runs the Welch tests use when naive is not run "
                         "here (an --ablation of DFWF's settings)")
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: tables of the runs finished so far")
    return ap


def results_name(ablation: str | None) -> str:
    """``real_sequence``, or the results name of an index entry (its own name when it
    lists no result files)."""
    if ablation is None:
        return "real_sequence"
    e = entry(ablation)
    return e.results_name or e.name


def study_config(args: argparse.Namespace, ap: argparse.ArgumentParser) -> RunConfig:
    """The config of ``--config`` or ``--ablation``, its sources pointed at the manifests,
    ``--set`` applied."""
    if args.ablation:
        try:
            cfg = ablation_config(args.ablation)
        except KeyError as exc:
            ap.error(f"--ablation: {exc.args[0]}")
    else:
        cfg = load_run_config(args.config)
    cfg = rs.with_sources(cfg, rs.set_paths(args))
    return override_config(cfg, args.overrides, "--set")


def prepare(cfg: RunConfig, out: Path) -> None:
    """``data.json`` (what the sequence holds) and ``groups.csv`` (each utterance's source,
    for the matched EER), written once from the table (no audio decoded)."""
    if (out / rs.DATA_FILE).is_file() and (out / rs.GROUPS_FILE).is_file():
        return
    from cl_spoof.benchmark.loading import read_run_table
    from cl_spoof.benchmark.planning import family_candidates, resolve_families
    from cl_spoof.data.table import utterance_groups

    table, _ = read_run_table(cfg.data)
    d = cfg.data
    families = resolve_families(d.families, family_candidates(table, [d.train_split,
                                                                      d.test_split]))
    counts = {}
    for family, members in families.items():
        for a in members:
            rows = table[table["attack"] == a]
            counts[a] = {"family": family,
                         "train": int((rows["split"] == d.train_split).sum()),
                         "test": int((rows["split"] == d.test_split).sum())}
    bona = table[table["label"] == "bonafide"]
    described = {
        "sources": {s.name: {**rs.manifest_summary(Path(s.path)),
                             **({"rebuild": rs.SETS[s.name].rebuild, "what": rs.SETS[s.name].what}
                                if s.name in rs.SETS else {})}
                    for s in d.sources},
        "families": {f: list(m) for f, m in families.items()},
        "systems": counts,
        "bonafide": {f"{src}/{split}": int(n) for (src, split), n in
                     bona.groupby(["source", "split"]).size().items()},
        "speakers": {split: int(table.loc[table["split"] == split, "speaker"].nunique())
                     for split in (d.train_split, d.test_split)},
        "split": (f"speaker-disjoint over all sources: data.resplit_by_speaker {{seed: "
                  f"{d.resplit_by_speaker.seed}, test_fraction: "
                  f"{d.resplit_by_speaker.test_fraction}}}" if d.resplit_by_speaker else
                  "each source's own train / test split"),
        "input": f"{d.sample_rate} Hz, {d.num_samples} samples, level {d.level}",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / rs.DATA_FILE).write_text(json.dumps(described, indent=1) + "\n")
    if cfg.metrics.matched_by:
        rs.write_groups(out, table["utt_id"], utterance_groups(table, cfg.metrics.matched_by))


def train(cfg: RunConfig, strategies: Sequence[str], seeds: Sequence[int], out: Path,
          jobs: int) -> None:
    """Yardsticks, then every strategy and seed (a finished part is never redone)."""
    from cl_spoof.workflows.compare import run_compare
    from cl_spoof.workflows.yardstick import run_yardstick

    prepare(cfg, out)
    if rs.read_yardsticks(out / "yardstick") is None:
        rs.say("yardsticks")
        run_yardstick(cfg, rs.YARDSTICKS, out / "yardstick", on_stage=rs.say)
    compare = out / "compare"
    run_compare(cfg, strategies, seeds, compare, rs.events(),
                resume=(compare / "compare.json").is_file(), jobs=jobs)


def collect(cfg: RunConfig, strategies: Sequence[str], seeds: Sequence[int], out: Path,
            naive_from: Path | None = None) -> dict[str, Any]:
    """Every number of the tables, from the runs and yardsticks finished under ``out``
    (and the naive runs under ``naive_from`` when naive is not among ``strategies``)."""
    groups = rs.read_groups(out)
    clip = cfg.data.num_samples * 4  # float32 input clips a memory of utterances holds
    runs = rs.compare_runs(out / "compare", strategies, seeds, groups, clip)
    if "naive" not in runs and naive_from is not None:
        runs = {**rs.compare_runs(naive_from / "compare", ["naive"], seeds,
                                  rs.read_groups(naive_from), clip), **runs}
    data = json.loads((out / rs.DATA_FILE).read_text()) if (out / rs.DATA_FILE).is_file() \
        else {"sources": {s.name: rs.manifest_summary(Path(s.path)) for s in cfg.data.sources}}
    first = next((done[0] for done in runs.values()), None)
    families: dict[str, list[str]] = data.get("families") or (
        first.families if first is not None and first.families else {})
    systems = first.attacks if first is not None else [a for m in families.values() for a in m]
    families = {f: [a for a in m if a in systems] for f, m in families.items()}  # with a column
    per_strategy: dict[str, Any] = {}
    for name, done in runs.items():
        matched_avg = [rs.mean_std(list(r.final_matched.values()))["mean"] for r in done]
        pooled_avg = [r.metrics.get("final_avg_eer") for r in done]
        per_strategy[name] = {
            "seeds": [r.seed for r in done],
            "final_avg_eer_matched": matched_avg,
            "final_avg_eer_pooled": pooled_avg,
            "bwt_matched": [r.matched_metrics.get("bwt") for r in done],
            "max_forgetting_matched": [r.matched_metrics.get("max_forgetting") for r in done],
            "bwt_pooled": [r.metrics.get("bwt") for r in done],
            "max_forgetting_pooled": [r.metrics.get("max_forgetting") for r in done],
            "seconds": [r.seconds for r in done],
            "memory_bytes": [None if r.memory is None else r.memory["bytes"] for r in done],
            "per_family_matched": {f: [rs.mean_of_systems(r.final_matched, m) for r in done]
                                   for f, m in families.items()},
            "per_family_pooled": {f: [rs.mean_of_systems(r.final, m) for r in done]
                                  for f, m in families.items()},
            "per_system_matched": {a: [r.final_matched.get(a) for r in done] for a in systems},
            "per_system_pooled": {a: [r.final.get(a) for r in done] for a in systems},
            "runs": [r.to_json() for r in done],
        }
    naive = per_strategy.get("naive")
    for name, s in per_strategy.items():
        s["welch_vs_naive"] = None if naive is None or name == "naive" else {
            key: rs.welch(s[key], naive[key])
            for key in ("final_avg_eer_matched", "final_avg_eer_pooled", "bwt_matched")}
    ys = rs.read_yardsticks(out / "yardstick") or {}
    yardsticks = {n: {"what": y.get("what"), "mean": y.get("mean"), "pooled": y.get("pooled"),
                      "matched_mean": y.get("matched_mean"),
                      "per_system": y.get("per_attack", {}), "matched": y.get("matched", {}),
                      "per_family_matched": {f: rs.mean_of_systems(y.get("matched") or {}, m)
                                             for f, m in families.items()}}
                  for n, y in ys.items()}
    return {"data": data, "families": families, "systems": systems,
            "strategies": per_strategy, "yardsticks": yardsticks}


def tables(result: dict[str, Any]) -> list[rs.Table]:
    """The study's tables (Markdown and JSON)."""
    strategies, ys = result["strategies"], result["yardsticks"]
    families, systems = result["families"], result["systems"]
    head = rs.Table(
        "Final average EER, forgetting, significance against naive and cost",
        ["strategy", "seeds", "final avg EER % matched", "p vs naive (matched)",
         "final avg EER % pooled", "p vs naive (pooled)", "BWT (pts)", "max forgetting (pts)",
         "wall time (min)", "memory kept (MB)"],
        notes="Mean ± std over seeds (sample std). Matched: each system's spoofs against the "
              "bona fide of its own source; pooled: against every test bona fide (the run's "
              "EER matrix). BWT and maximum forgetting of the matched matrix (BWT < 0: "
              "forgot). p: Welch's t-test (unequal variances) against naive over the seeds. "
              "Memory kept: what the strategy carries from one family to the next "
              "(checkpointed state, replayed utterances counted as 32-bit input clips, LwF's "
              "previous model). Yardsticks: fitted once on every family's training rows.")
    for name, s in strategies.items():
        welch = s.get("welch_vs_naive") or {}
        mem = rs.mean_std([None if b is None else b / 2**20 for b in s["memory_bytes"]])
        head.rows.append([
            name, str(len(s["seeds"])), rs.pm(s["final_avg_eer_matched"]),
            rs.p_text(welch.get("final_avg_eer_matched")), rs.pm(s["final_avg_eer_pooled"]),
            rs.p_text(welch.get("final_avg_eer_pooled")),
            rs.pm(s["bwt_matched"], signed=True) if name != "joint" else "–",
            rs.pm(s["max_forgetting_matched"]) if name != "joint" else "–",
            rs.pm([None if v is None else v / 60 for v in s["seconds"]]),
            "–" if mem["mean"] is None else f"{mem['mean']:.1f}"])
    for name, y in ys.items():
        head.rows.append([f"yardstick {name}", "–", rs.pm([y["matched_mean"]]), "–",
                          rs.pm([y["mean"]]), "–", "–", "–", "–", "–"])
    fam = rs.Table("Final matched EER (%) per family",
                   ["", *families],
                   notes="Mean over the family's systems of the final matched EER; mean ± std "
                         "over seeds.")
    for name, s in strategies.items():
        fam.rows.append([name, *[rs.pm(s["per_family_matched"][f]) for f in families]])
    for name, y in ys.items():
        fam.rows.append([f"yardstick {name}",
                         *[rs.pm([y["per_family_matched"][f]]) for f in families]])
    family_of = {a: f for f, m in families.items() for a in m}
    per = rs.Table("Final matched EER (%) per system",
                   ["system", "family", *strategies, *[f"yardstick {n}" for n in ys]],
                   notes="Mean ± std over seeds; matched as above.")
    for a in systems:
        per.rows.append([a, family_of.get(a, "–"),
                         *[rs.pm(s["per_system_matched"][a]) for s in strategies.values()],
                         *[rs.pm([(y["matched"] or {}).get(a)]) for y in ys.values()]])
    return [head, fam, per]


def describe(result: dict[str, Any], cfg: RunConfig) -> str:
    """The data paragraph of the results page."""
    d = result["data"]
    sources = "; ".join(
        f"{name}: {s.get('path')} ({s.get('utterances', '?')} utterances"
        + (f"; rebuild: {s['rebuild']}" if s.get("rebuild") else "") + ")"
        for name, s in d.get("sources", {}).items())
    return (f"Data: {sources}. Split: {d.get('split', '?')}; input {d.get('input', '?')}. "
            f"Families, oldest first: "
            + "; ".join(f"{f} ({', '.join(m)})" for f, m in result["families"].items())
            + f". Recipe: preset {cfg.model.preset}; epochs: "
              f"{cfg.train.first_epochs or cfg.train.epochs} on the first family (and joint), "
              f"{cfg.train.epochs} on each later one.")


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    cfg = study_config(args, ap)
    strategies = rs.parse_list(args.strategies)
    seeds = [int(s) for s in rs.parse_list(args.seeds)]
    name = args.name or results_name(args.ablation)
    out = args.out or REPO / "runs" / name
    if not args.collect:
        train(cfg, strategies, seeds, out, args.jobs)
    result = collect(cfg, strategies, seeds, out, args.naive_from)
    if args.naive_from is not None and "naive" not in strategies:
        result["naive_from"] = str(args.naive_from)
    payload = {
        "title": TITLE + (f" ({args.ablation})" if args.ablation else ""),
        "description": describe(result, cfg),
        "command": rs.command_line(MODULE, argv),
        "runs": str(out),
        "config": {"base": str(args.config) if not args.ablation else args.ablation,
                   "overrides": args.overrides, "resolved": to_dict(cfg)},
        "columns": {
            "final_avg_eer_matched": "mean over systems of the final EER (%) of each system "
                                     "against the bona fide of its own source",
            "final_avg_eer_pooled": "mean over systems of the final EER (%) against every "
                                    "test bona fide (the run's EER matrix)",
            "bwt_matched": "backward transfer of the matched matrix (EER points; < 0: forgot)",
            "max_forgetting_matched": "largest rise of a system's matched EER from its best "
                                      "after its family was learned (points)",
            "welch_vs_naive": "Welch's t-test against naive over the seeds: t, p, n",
            "seconds": "wall time of each run", "memory_bytes": "what the strategy keeps "
            "between families (see the first table's notes)",
            "per_family_matched": "mean over the family's systems of the final matched EER",
        },
        **result,
    }
    path = rs.write_results(name, payload, tables(result), payload["description"])
    rs.say(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
