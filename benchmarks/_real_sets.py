"""What the real-set studies share (``studies/real_sets_screen``, ``studies/real_sequence``,
``studies/leave_one_family_out``): where the three real sets are and how to rebuild them,
configs pointed at them, finished runs read back into numbers (matched EER from the score
files), Welch tests, and results files that describe themselves.

The three sets (never shipped, never committed: their licences allow evaluation only):

- ``vocoders_tts``: the project's development set ``../shared/data/real_vocoders_tts``
  (its README there says where every file comes from);
- ``yourtts``: ``bash ../shared/data/builders/build_yourtts.sh GIT_DIR ../data/yourtts``
  (GIT_DIR: a git clone of github Edresson/YourTTS with its gh-pages branch);
- ``vctk_vc``: ``bash ../shared/data/builders/build_vctk_vc.sh LVC_GIT_DIR STARGAN_GIT_DIR
  ../data/vctk_vc`` (git clones of github lvc-vc/lvc-vc-demo and
  starganv2-vc/starganv2-vc.github.io).

Paths are relative to the repository root; ``--vocoders-tts``, ``--yourtts`` and
``--vctk-vc`` point elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._common import REPO, RESULTS, machine
from cl_spoof.config import RunConfig, to_dict, with_overrides
from cl_spoof.labels import PRETRAINED_PREFIX
from cl_spoof.metrics.continual import summarize
from cl_spoof.rundir import STAGE_BASE, CompareDir, RunDir
from cl_spoof.workflows.events import RunEvents

#: The yardsticks every real-set study fits beside the detector: full band and 0-4 kHz.
YARDSTICKS = ("lfcc", "ltas", "lfcc_bl", "ltas_bl")


@dataclass(frozen=True)
class RealSet:
    """One real set: its manifest's default place and how to rebuild it."""

    name: str
    default: Path
    what: str
    rebuild: str


SETS: dict[str, RealSet] = {s.name: s for s in (
    RealSet("vocoders_tts", REPO.parent / "shared" / "data" / "real_vocoders_tts" / "manifest.csv",
            "real LibriTTS speech; five GAN vocoders (is21-*), five diffusion / GAN vocoders "
            "(is23-*), StyleTTS 2 and F5-TTS; 24 kHz",
            "development data of the project: ../shared/data/real_vocoders_tts"),
    RealSet("yourtts", REPO.parent / "data" / "yourtts" / "manifest.csv",
            "YourTTS zero-shot TTS (six training configurations, fine-tuned), YourTTS voice "
            "conversion, SC-GlowTTS; VCTK and LibriTTS bona fide; 16 kHz",
            "bash ../shared/data/builders/build_yourtts.sh GIT_DIR ../data/yourtts (GIT_DIR: a "
            "git clone of github Edresson/YourTTS with its gh-pages branch)"),
    RealSet("vctk_vc", REPO.parent / "data" / "vctk_vc" / "manifest.csv",
            "eleven voice-conversion systems with the real VCTK source and target utterances; "
            "16 kHz",
            "bash ../shared/data/builders/build_vctk_vc.sh LVC_GIT_DIR STARGAN_GIT_DIR "
            "../data/vctk_vc (git clones of github lvc-vc/lvc-vc-demo and "
            "starganv2-vc/starganv2-vc.github.io)"),
)}


def say(text: str) -> None:
    """A progress line with the time (benchmarks print; the library never does)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def events() -> RunEvents:
    """Progress of runs and comparisons, printed."""
    return RunEvents(on_stage=say)


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command that produced a result, as typed from the repository root."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *args])


def add_set_options(parser: argparse.ArgumentParser) -> None:
    """``--vocoders-tts``, ``--yourtts``, ``--vctk-vc``: each real set's manifest."""
    for s in SETS.values():
        parser.add_argument(f"--{s.name.replace('_', '-')}", type=Path, default=s.default,
                            metavar="MANIFEST",
                            help=f"manifest of {s.name} (default: {s.default}; {s.rebuild})")


def set_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Each real set's manifest, as the options give it."""
    return {name: Path(getattr(args, name)).expanduser().resolve() for name in SETS}


def real_manifest(name: str, given: str | Path | None = None) -> Path:
    """The manifest of real set ``name``: ``given`` (made absolute), else where :data:`SETS`
    expects it; ``FileNotFoundError`` naming the place (and how to rebuild the set) when
    no file is there. The shipped configs name no data of this machine: the studies pass
    the manifest from here."""
    path = Path(given).expanduser().resolve() if given else SETS[name].default
    if not path.is_file():
        how = "" if given else f" ({SETS[name].rebuild})"
        raise FileNotFoundError(f"{name}: no manifest at {path}{how}")
    return path


def parse_list(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def with_sources(cfg: RunConfig, paths: Mapping[str, Path]) -> RunConfig:
    """``cfg`` with each ``data.sources`` entry named in ``paths`` pointed at its manifest."""
    data = to_dict(cfg)["data"]
    for src in data["sources"]:
        if src["name"] in paths:
            src["path"] = str(paths[src["name"]])
    return with_overrides(cfg, data={"sources": data["sources"]})


def manifest_summary(path: Path) -> dict[str, Any]:
    """What a manifest holds (counts by label, split and attack) and its SHA-256, so a
    result names exactly the data it measured."""
    out: dict[str, Any] = {"path": str(path), "exists": path.is_file()}
    if not path.is_file():
        return out
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    out.update({
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "utterances": len(table),
        "by_label_split": {f"{lab}/{split}": int(n) for (lab, split), n in
                           table.groupby(["label", "split"]).size().items()},
        "spoof_per_attack": {str(a): int(n) for a, n in
                             table[table["label"] == "spoof"].groupby("attack").size().items()},
        "speakers": int(table["speaker"].nunique()),
    })
    return out


# --------------------------------------------------------------------------- statistics


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers (not None, not NaN)."""
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean_of_systems(values: dict[str, float], systems: Sequence[str]) -> float | None:
    """The mean of ``values`` over ``systems`` (those with a finite value; None if none):
    a family's or a held-out set's number."""
    got = finite([values.get(a) for a in systems])
    return sum(got) / len(got) if got else None


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` over the finite values (sample std, ddof 1; None for one)."""
    v = finite(values)
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None,
            "n": len(v)}


def pm(values: Sequence[float | None], decimals: int = 1, signed: bool = False) -> str:
    """``mean ± std`` of the finite values (``–`` for none)."""
    s = mean_std(values)
    if s["mean"] is None:
        return "–"
    sign = "+" if signed else ""
    text = f"{s['mean']:{sign}.{decimals}f}"
    return text + (f" ± {s['std']:.{decimals}f}" if s["std"] is not None else "")


def welch(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any] | None:
    """Welch's t-test of two samples (``scipy.stats.ttest_ind(equal_var=False)``):
    ``{"t", "p", "n"}``; None with fewer than two finite values on a side."""
    from scipy.stats import ttest_ind

    x, y = finite(a), finite(b)
    if len(x) < 2 or len(y) < 2:
        return None
    with warnings.catch_warnings():  # constant samples: t infinite or undefined, said so
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_ind(x, y, equal_var=False)
    t, p = float(res.statistic), float(res.pvalue)
    return {"t": t if math.isfinite(t) else None, "p": p if math.isfinite(p) else None,
            "n": [len(x), len(y)]}


def p_text(test: dict[str, Any] | None) -> str:
    """A Welch p-value as a table shows it."""
    if test is None or test.get("p") is None:
        return "–"
    return f"{test['p']:.3f}" if test["p"] >= 0.001 else f"{test['p']:.1e}"


# --------------------------------------------------------------------------- runs


GROUPS_FILE = "groups.csv"
DATA_FILE = "data.json"


def write_groups(out: Path, utt_ids: Sequence[str], groups: Sequence[str]) -> None:
    """``groups.csv``: the matched-EER group (``metrics.matched_by``) of every utterance,
    so results are collected from the score files without the audio."""
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"utt_id": list(utt_ids), "group": list(groups)}).to_csv(out / GROUPS_FILE,
                                                                         index=False)


def read_groups(out: Path) -> dict[str, str]:
    """``groups.csv`` of a study folder (empty when absent: no matched EER)."""
    path = out / GROUPS_FILE
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(table["utt_id"], table["group"], strict=True))


def matched_eers(score_file: Path, groups: Mapping[str, str]) -> dict[str, float]:
    """EER (%) of each attack of a score file against the bona fide of its own group."""
    from cl_spoof.metrics.eer import matched_eer_per_attack
    from cl_spoof.metrics.score_files import read_asvspoof2019_scores

    scores = read_asvspoof2019_scores(score_file)
    frame = pd.DataFrame({"attack": scores["attack"], "key": scores["key"],
                          "score": scores["score"],
                          "group": [groups.get(u, "") for u in scores["utt_id"]]})
    return {a: 100 * v for a, v in matched_eer_per_attack(frame).items()}


def _bytes(state: Any) -> int:
    import torch

    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(_bytes(v) for v in state)
    return 0


def _rows(state: Any, memory: bool = False) -> int:
    """Utterances a memory holds as table rows: the tensors under a ``rows`` key (replay
    buffers) or ``agem_buffers`` (A-GEM memories)."""
    import torch

    if isinstance(state, torch.Tensor):
        return int(state.numel()) if memory else 0
    if isinstance(state, dict):
        return sum(_rows(v, memory or k in ("rows", "agem_buffers")) for k, v in state.items())
    if isinstance(state, list | tuple):
        return sum(_rows(v, memory) for v in state)
    return 0


def kept_memory(run: RunDir, stage: int, strategy: str, clip_bytes: int) -> dict[str, Any] | None:
    """What a strategy keeps from one experience to the next, in bytes, from a checkpoint:
    its checkpointed state (importances, teachers, masks...), memories of utterances
    counted as the input clips they hold (``clip_bytes`` each), and LwF's previous model
    (rebuilt from the weights, so not in its state). None without the checkpoint."""
    path = run.checkpoint_path(stage)
    if not path.is_file():
        return None
    ckpt = run.read_checkpoint(stage)
    state = ckpt.get("strategy_state") or {}
    model = _bytes(ckpt.get("model_state") or {})
    rows = _rows(state)
    kept = _bytes(state) + rows * clip_bytes + (model if strategy == "lwf" else 0)
    return {"bytes": kept, "model_bytes": model, "memory_utterances": rows}


@dataclass
class FinishedRun:
    """One finished run, as the study tables need it."""

    strategy: str
    seed: int
    path: Path
    attacks: list[str]
    learned: list[str]
    families: dict[str, list[str]] | None
    eer: list[list[float]]  # stage x attack, pooled bona fide (the run's own matrix)
    matched: list[dict[str, float]]  # per stage: attack -> matched EER (%)
    metrics: dict[str, Any]
    matched_metrics: dict[str, Any]
    seconds: float | None
    memory: dict[str, Any] | None = None

    @property
    def final(self) -> dict[str, float]:
        """Final EER (%) of every attack against every test bona fide."""
        return dict(zip(self.attacks, self.eer[-1], strict=True))

    @property
    def final_matched(self) -> dict[str, float]:
        """Final matched EER (%) of every attack (empty without groups)."""
        return self.matched[-1] if self.matched else {}

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "seed": self.seed, "path": str(self.path),
                "learned": self.learned, "final": self.final,
                "final_matched": self.final_matched, "eer_matrix": self.eer,
                "matched_matrix": [[m.get(a) for a in self.attacks] for m in self.matched],
                "metrics": {k: self.metrics.get(k) for k in
                            ("final_avg_eer", "final_pooled_eer", "bwt", "max_forgetting",
                             "avg_forgetting", "avg_eer_learned", "forgetting")},
                "matched_metrics": self.matched_metrics, "seconds": self.seconds,
                "memory": self.memory}


def read_finished_run(path: Path, groups: Mapping[str, str], clip_bytes: int = 0
                      ) -> FinishedRun | None:
    """A finished run directory read back (None when it has not finished): its matrix,
    the matched EER of every stage (from the score files, with ``groups``), the continual
    metrics of the matched matrix, its wall time and what its strategy keeps."""
    run = RunDir(path)
    status = run.status() if run.status_file.is_file() else None
    if status is None or not status.get("finished"):
        return None
    matrix = run.read_matrix()
    if status.get("stage_base") == STAGE_BASE and (matrix["stage"] < STAGE_BASE).any():
        matrix = matrix[matrix["stage"] >= STAGE_BASE].reset_index(drop=True)  # trained only
    attacks = [str(c) for c in matrix.columns
               if c not in ("stage", "trained_on") and not str(c).startswith(PRETRAINED_PREFIX)]
    learned = [str(v) for v in matrix["trained_on"]]
    metrics = json.loads(run.metrics_file.read_text())
    families = metrics.get("families")
    matched: list[dict[str, float]] = []
    matched_metrics: dict[str, Any] = {}
    if groups:
        for stage in matrix["stage"]:
            eers = matched_eers(run.score_file(int(stage), "asvspoof2019"), groups)
            matched.append({a: eers.get(a, float("nan")) for a in attacks})
        frame = pd.DataFrame([[m[a] for a in attacks] for m in matched], columns=attacks)
        from cl_spoof.metrics.continual import average_forgetting

        matched_metrics = summarize(frame, learned, families)
        matched_metrics["avg_forgetting"] = average_forgetting(frame, learned,
                                                               families=families)
    cfg = yaml_config(run.config_file)
    strategy = str(cfg.get("strategy", {}).get("name", ""))
    seed = int(cfg.get("seed", 0))
    last = int(matrix["stage"].iloc[-1])
    return FinishedRun(strategy=strategy, seed=seed, path=path, attacks=attacks,
                       learned=learned, families=families,
                       eer=matrix[attacks].to_numpy(dtype=float).tolist(), matched=matched,
                       metrics=metrics, matched_metrics=matched_metrics,
                       seconds=status.get("seconds"),
                       memory=kept_memory(run, last, strategy, clip_bytes))


def yaml_config(path: Path) -> dict[str, Any]:
    """A run's stored ``config.yaml`` as plain data."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def compare_runs(out: Path, strategies: Sequence[str], seeds: Sequence[int],
                 groups: Mapping[str, str], clip_bytes: int = 0
                 ) -> dict[str, list[FinishedRun]]:
    """The finished runs of a compare directory, strategy by strategy (seeds in order;
    strategies without any finished run left out)."""
    compare = CompareDir(out)
    runs: dict[str, list[FinishedRun]] = {}
    for name in strategies:
        found = [read_finished_run(compare.run_dir(name, seed).path, groups, clip_bytes)
                 for seed in seeds]
        done = [r for r in found if r is not None]
        if done:
            runs[name] = done
    return runs


def read_yardsticks(folder: Path) -> dict[str, Any] | None:
    """``yardstick.json``'s yardsticks (None before they were fitted)."""
    path = folder / "yardstick.json"
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text())["yardsticks"])


# --------------------------------------------------------------------------- results


@dataclass
class Table:
    """One table of a result: a title, column names, rows of text cells, notes."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows,
                "notes": self.notes}


def write_results(name: str, payload: dict[str, Any], tables: Sequence[Table],
                  intro: str = "") -> Path:
    """``benchmarks/results/<name>.json`` (``payload`` + the machine + the tables) and
    ``<name>.md`` (the title, ``intro`` and the tables); returns the JSON's path."""
    measured = machine()
    payload = {"title": payload.get("title", name), **payload, "machine": measured,
               "tables": [t.to_json() for t in tables]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(_clean(payload), indent=1, default=_plain,
                               allow_nan=False) + "\n")
    md = [f"# {payload['title']}", "",
          f"Written {measured['date']} on {measured['cores']} cores ({measured['cpu']}, CUDA: "
          f"{measured['cuda']}) by `{payload.get('command', '')}`.", ""]
    if intro:
        md += [intro, ""]
    md += [t.markdown() for t in tables]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    return path


def _clean(value: Any) -> Any:
    """``value`` with every NaN or infinity as None (strict JSON)."""
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")
