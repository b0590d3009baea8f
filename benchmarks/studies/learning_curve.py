"""How the real-set EER depends on the amount of real training data, in one command.

Joint training with ``configs/real_vocoders.yaml`` (or ``--config``, or ``--ablation``:
an entry of ``benchmarks/index.yaml``) on the real set's manifest (``--source``; by default
the ``vocoders_tts`` set where ``benchmarks/_real_sets.py`` expects it), on a fraction of
the training speakers of every sub-corpus (first folder of each path; drawn with
numpy seed ``--subset-seed``, 0 by default; at least one speaker each; the evaluation
split untouched), beside the yardsticks
trained on the same fraction. 100 % is the whole manifest. The question it
answers: is the detector limited by its recipe or by the 12-20 training spoofs per
vocoder the shared set holds?

Outputs: the subsampled manifests and runs under ``--out`` (resumable),
``benchmarks/results/learning_curve.json`` and ``.md``.
Usage: ``python -m benchmarks.studies.learning_curve [--fractions 0.25,0.5,1] [--seeds 0,1,2]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._common import RESULTS, machine
from benchmarks.studies.real_attacks import _pm, benchmark, real_set_config, real_set_parser
from cl_spoof.config import with_overrides
from cl_spoof.data.table import BONAFIDE, utterance_groups


def _read(manifest: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The manifest with absolute paths, and the sub-corpus (first folder) of each row."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["path"] = [str((manifest.parent / p).resolve()) for p in table["path"]]
    return table, utterance_groups(table, "folder")


def subsample(manifest: Path, fraction: float, out: Path, train_split: str = "train",
              subset_seed: int = 0) -> Path:
    """Write a copy of ``manifest`` keeping ``fraction`` of every sub-corpus' speakers
    in ``train_split`` (at least one; drawn with numpy seed ``subset_seed``) and every
    other row; paths become absolute."""
    table, folder = _read(manifest)
    train = table["split"] == train_split
    rng = np.random.default_rng(subset_seed)
    keep = ~train
    for name in sorted(folder[train].unique()):
        rows = train & (folder == name).to_numpy()
        speakers = sorted(table.loc[rows, "speaker"].unique())
        rng.shuffle(speakers)
        chosen = speakers[:max(1, int(round(fraction * len(speakers))))]
        keep |= rows & table["speaker"].isin(chosen)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"manifest_{round(100 * fraction)}{_suffix(subset_seed)}.csv"
    table[keep].to_csv(path, index=False)
    return path


def _suffix(subset_seed: int) -> str:
    """File and folder suffix of a speaker subset (none for the default subset 0)."""
    return f"_subset{subset_seed}" if subset_seed else ""


def markdown(points: list[dict]) -> str:
    """The results table: mean / pooled EER per fraction, detector and yardsticks."""
    names = list(points[0]["result"]["yardsticks"])
    lines = ["| training speakers | training files (spoof / bona fide) | spoofs per attack "
             "(fewest–most) | detector, joint: mean of the attacks | pooled | "
             + " | ".join(f"yardstick {n}: mean" for n in names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for p in points:
        r = p["result"]
        seeds = r["runs"]["joint"]["seeds"]
        mean = _pm([s["metrics"]["final_avg_eer"] for s in seeds])
        pooled = _pm([s["metrics"]["final_pooled_eer"] for s in seeds])
        ys = " | ".join(f"{r['yardsticks'][n]['mean']:.1f}" for n in names)
        per_attack = p["train_per_attack"].values()
        lines.append(f"| {100 * p['fraction']:.0f} % | {p['train_spoof']} / "
                     f"{p['train_bonafide']} | {min(per_attack)}–{max(per_attack)} | "
                     f"{mean} ({len(seeds)} seeds) | {pooled} | {ys} |")
    groups = points[0]["attack_folders"]
    folders = sorted(set(groups.values()))
    lines += ["", "Mean EER of the attacks of each sub-corpus (first folder of their files): "
              "detector, mean over seeds / yardstick ltas", "",
              "| training speakers | " + " | ".join(folders) + " |",
              "|---" * (1 + len(folders)) + "|"]
    for p in points:
        r = p["result"]
        seeds = r["runs"]["joint"]["seeds"]
        cells = []
        for folder in folders:
            attacks = [a for a in r["attacks"] if groups[a] == folder]
            det = np.mean([s["final"][a] for s in seeds for a in attacks])
            ltas = np.mean([r["yardsticks"]["ltas"]["per_attack"][a] for a in attacks])
            cells.append(f"{det:.1f} / {ltas:.1f}")
        lines.append(f"| {100 * p['fraction']:.0f} % | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = real_set_parser(__doc__, "learning_curve")
    parser.add_argument("--fractions", default="0.25,0.5,1")
    parser.add_argument("--subset-seed", type=int, default=0,
                        help="numpy seed of the speaker subsets (results get a suffix unless 0)")
    args = parser.parse_args()
    cfg = real_set_config(parser, args)
    manifest = Path(cfg.data.source)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    full, folder = _read(manifest)
    attack_folders = {a: str(folder[(full["attack"] == a).to_numpy()].iloc[0])
                      for a in cfg.data.attacks}
    points: list[dict[str, Any]] = []
    for fraction in (float(f) for f in args.fractions.split(",") if f):
        if not 0 < fraction <= 1:
            parser.error(f"--fractions: {fraction} is not in (0, 1]")
        source = (manifest if fraction == 1 else
                  subsample(manifest, fraction, args.out, cfg.data.train_split,
                            args.subset_seed))
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
        train = table[(table["split"] == cfg.data.train_split)
                      & ((table["label"] == BONAFIDE) | table["attack"].isin(cfg.data.attacks))]
        result = benchmark(with_overrides(cfg, data={"source": str(source)}), ["joint"],
                           seeds, args.out / f"train{round(100 * fraction)}"
                           f"{_suffix(args.subset_seed) if fraction < 1 else ''}",
                           train=not args.collect)
        points.append({"fraction": fraction, "manifest": str(source),
                       "train_spoof": int((train["label"] == "spoof").sum()),
                       "train_bonafide": int((train["label"] == "bonafide").sum()),
                       "train_per_attack": {a: int((train["attack"] == a).sum())
                                            for a in cfg.data.attacks},
                       "attack_folders": attack_folders, "result": result})
    measured = machine()
    payload = {"machine": measured, "subset_seed": args.subset_seed, "points": points}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"learning_curve{_suffix(args.subset_seed)}"
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    md = (f"Tables written {measured['date']} on {measured['cores']} cores "
          f"({measured['cpu']}, CUDA: {measured['cuda']}); "
          f"config {args.config.name if not args.ablation else args.ablation + ' (index)'}; "
          f"speaker subset {args.subset_seed}; from the runs under "
          "--out; EER in %, mean ± std over "
          "seeds.\n\n" + markdown(points))
    (RESULTS / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
