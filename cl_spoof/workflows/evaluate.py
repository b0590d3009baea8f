"""Evaluate a trained checkpoint on any labelled set (``cl-spoof evaluate``).

The set is a CSV manifest, a corpus root of any known layout, or a config (its data
section); one of its splits is evaluated (``split``; default: a config's
``data.test_split``, else ``eval``). A checkpoint trained on one corpus can so be
tested on another (cross-corpus) without a run.

**Inputs are prepared exactly as a run prepares its test clips**, with the data
settings stored in the checkpoint's config: every file is decoded to mono and
resampled to ``data.sample_rate``, its first ``1.5 x data.num_samples`` samples kept (as
the run's waveform cache keeps them), its level set on that part (``data.level``,
``data.level_db``), then cut to ``data.num_samples`` from its start (a shorter file is
repeated). A file longer than that is judged on its start, as in the run's EER
matrix. With ``whole_file`` every file is scored as ``cl-spoof score`` scores it instead:
the mean over windows of ``data.num_samples`` samples, half a window apart, covering the
whole file (its level set on its start, as in training).

Metrics (EER in %, each utterance once): the EER of every attack's spoofs against all
the bona fide, the pooled EER, ASVspoof 5's minDCF, actDCF and Cllr, and ASVspoof
2019's min t-DCF. actDCF and Cllr need calibrated log-likelihood ratios: the
calibration the checkpoint's run fitted at that stage (``data.calibration_split``,
recorded in its ``metrics.json``) is used; without one they are not available and
:attr:`Evaluation.not_available` says why. min t-DCF needs the organisers' ASV scores of
the same partition (``asv_scores``, or a config's ``metrics.asv_scores``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cl_spoof.benchmark import read_run_table
from cl_spoof.benchmark.planning import configured_attacks
from cl_spoof.data import read_source
from cl_spoof.data.audio import fix_length, set_level
from cl_spoof.data.cache import WaveformCache, cache_samples
from cl_spoof.data.checks import CheckReport, Problem, check_table
from cl_spoof.data.table import BONAFIDE
from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.infra.files import atomic_dir, atomic_write_text
from cl_spoof.labels import NO_ATTACK
from cl_spoof.metrics.calibration import LogisticCalibration, cllr
from cl_spoof.metrics.dcf import act_dcf, min_dcf, min_tdcf_2019
from cl_spoof.metrics.eer import compute_eer, logits_to_scores
from cl_spoof.models.loading import LoadedCheckpoint
from cl_spoof.reporting.det import write_det_plot
from cl_spoof.rundir import write_scores
from cl_spoof.workflows.score import (
    CheckpointRef,
    load_committed,
    resolve_checkpoint,
    window_means,
)
from cl_spoof.workflows.setup import load_run_config

__all__ = ["ALL_SPLITS", "STAGE_KEYS", "Evaluation", "evaluate", "evaluation_outputs",
           "write_evaluation"]

#: ``split`` value that evaluates every row of the set.
ALL_SPLITS = "all"
Progress = Callable[[str, int, int], None]
#: The stage metrics :func:`evaluate` reports, in the registry's order.
STAGE_KEYS = ("pooled_eer", "min_dcf", "act_dcf", "cllr", "min_tdcf")
CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass
class Evaluation:
    """What :func:`evaluate` measured, and on what."""

    checkpoint: Path
    data: str  # the set, and the split evaluated
    attacks: dict[str, float]  # attack -> EER %
    counts: dict[str, int]  # attack (and "bonafide") -> utterances
    metrics: dict[str, float | None]  # STAGE_KEYS -> value (None: not available)
    not_available: dict[str, str]  # metric key -> why it is not available
    scores: pd.DataFrame  # utt_id, attack, key, score (higher = more bona fide)
    prepared: str  # how the inputs were prepared
    calibration: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` of ``--out``."""
        return {"checkpoint": str(self.checkpoint), "data": self.data,
                "prepared": self.prepared, "eer_per_attack": self.attacks,
                "utterances": self.counts, **self.metrics,
                "not_available": self.not_available, "calibration": self.calibration,
                **self.extra}


def _is_config(path: Path) -> bool:
    return path.suffix.lower() in CONFIG_SUFFIXES


def _set_table(data: Path, split: str | None, layout: str | None, allow_missing: bool,
               overrides: Sequence[str], progress: Progress | None
               ) -> tuple[pd.DataFrame, str, str | None]:
    """The rows to evaluate, a description of them, and a config's ASV score file."""
    if _is_config(data):
        if layout is not None:
            raise CLSpoofError("--layout reads a corpus folder; a config names its own sources")
        cfg = load_run_config(data, overrides, "--set")
        d = cfg.data
        if allow_missing:
            from dataclasses import replace

            d = replace(d, allow_missing=True)
        table, _ = read_run_table(d, progress)
        chosen = split or d.test_split
        attacks = set(configured_attacks(table, d))
        rows = table[(table["attack"].isin(attacks)) | (table["label"] == BONAFIDE)]
        return _split_rows(rows, chosen, data), f"{data} (split {chosen})", \
            cfg.metrics.asv_scores
    if overrides:
        raise CLSpoofError("--set changes a config; DATA is not one (give a config, or the "
                           "settings the checkpoint was trained with are used)")
    chosen = split or "eval"
    table = read_source(data, layout=layout)
    report: CheckReport = check_table(
        table, allow_missing=allow_missing, check_audio=False,
        splits_read=None if chosen == ALL_SPLITS else frozenset({chosen}))
    report.raise_if_problems(data)
    return _split_rows(report.table, chosen, data), f"{data} (split {chosen})", None


def _split_rows(table: pd.DataFrame, split: str, data: Path) -> pd.DataFrame:
    if split != ALL_SPLITS:
        present = sorted(set(table["split"]))
        table = table[table["split"] == split]
        if table.empty:
            raise DataError(f"{data}: no rows of split {split!r} (its splits: "
                            f"{', '.join(present) or 'none'}); choose one with --split, or "
                            f"--split {ALL_SPLITS}")
    labels = set(table["label"])
    if BONAFIDE not in labels or labels == {BONAFIDE}:
        raise DataError(f"{data}: the rows evaluated need bona fide and spoof utterances; "
                        f"they have {len(table)} row(s) of {', '.join(sorted(labels))}")
    return table.reset_index(drop=True)


def _score_rows(ckpt: LoadedCheckpoint, table: pd.DataFrame, batch_size: int,
                progress: Progress | None) -> np.ndarray:
    """Scores of every row, inputs prepared as a run's test clips (module docstring)."""
    cache = WaveformCache(None, sample_rate=ckpt.sample_rate,
                          max_samples=cache_samples(ckpt.num_samples))
    report = None if progress is None else (lambda i, n: progress("decode audio", i, n))
    waveforms, problems = cache.load(table["path"].tolist(), progress=report)
    if problems:
        CheckReport(table, problems).raise_if_problems("the evaluation set")
    scores = np.empty(len(table), dtype=np.float64)
    n = len(table)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = range(start, min(start + batch_size, n))
            clips = [fix_length(set_level(waveforms.raw(i), ckpt.level, ckpt.level_db),
                                ckpt.num_samples) for i in idx]
            x = torch.from_numpy(np.stack(clips)).to(ckpt.device)
            scores[start:start + len(clips)] = logits_to_scores(
                ckpt.model(x)).double().cpu().numpy()
            if progress is not None:
                progress("score", min(start + batch_size, n), n)
    return scores


def _score_whole_files(ckpt: LoadedCheckpoint, table: pd.DataFrame, batch_size: int,
                       progress: Progress | None) -> np.ndarray:
    """Scores of every row: the mean over windows covering the whole file (module
    docstring); undecodable files are one :class:`DataError` naming them."""
    report = None if progress is None else (lambda i, n: progress("score", i, n))
    win = ckpt.num_samples
    means, _, _, problems = window_means(ckpt, [Path(p) for p in table["path"]], win,
                                         max(1, win // 2), batch_size, report)
    if problems:
        CheckReport(table, [Problem(str(table["path"].iloc[i]), why)
                            for i, why in problems.items()]).raise_if_problems(
            "the evaluation set")
    return means


def _section(stored: dict[str, Any], name: str) -> dict[str, Any]:
    """A section of a stored config (empty when absent or not a mapping)."""
    value = stored.get(name)
    return value if isinstance(value, dict) else {}


def _stored_calibration(ref: CheckpointRef, stage: int | None) -> dict[str, Any] | None:
    """The calibration the checkpoint's run fitted at its stage (``metrics.json``), if any."""
    if ref.run is None or stage is None or not ref.run.metrics_file.is_file():
        return None
    try:
        official = json.loads(ref.run.metrics_file.read_text(encoding="utf-8")).get("official")
    except (OSError, ValueError):
        return None
    for entry in official if isinstance(official, list) else []:
        if isinstance(entry, dict) and entry.get("stage") == stage \
                and isinstance(entry.get("calibration"), dict):
            return dict(entry["calibration"])
    return None


def _calibration(record: dict[str, Any]) -> LogisticCalibration:
    fields = {k: record[k] for k in LogisticCalibration.__dataclass_fields__}
    fields["C"] = math.inf if fields["C"] == "inf" else float(fields["C"])
    return LogisticCalibration(**fields)


def evaluate(checkpoint: Path, data: Path, *, stage: int | None = None,
             split: str | None = None, layout: str | None = None, allow_missing: bool = False,
             asv_scores: Path | None = None, overrides: Sequence[str] = (),
             device: str = "cpu", batch_size: int | None = None,
             progress: Progress | None = None, whole_file: bool = False) -> Evaluation:
    """Evaluate ``checkpoint`` (a checkpoint file or a run directory: its last stage, or
    ``stage``) on the labelled set ``data`` (module docstring). ``overrides`` change a
    config ``data``; ``progress`` gets ``(what, done, total)``; ``whole_file`` scores
    windows over every whole file instead of its start."""
    ref = resolve_checkpoint(checkpoint, stage)
    table, described, config_asv = _set_table(Path(data), split, layout, allow_missing,
                                              overrides, progress)
    ckpt = load_committed(ref.path, device)  # a run's stage being added is never used
    train = _section(ckpt.config, "train")
    metrics_cfg = _section(ckpt.config, "metrics")
    batch = batch_size or int(train.get("eval_batch_size") or 64)
    values = (_score_whole_files if whole_file else _score_rows)(ckpt, table, batch, progress)
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    scores = pd.DataFrame({"utt_id": table["utt_id"].to_numpy(),
                           "attack": np.where(is_bona, NO_ATTACK, table["attack"].to_numpy()),
                           "key": np.where(is_bona, "bonafide", "spoof"), "score": values})
    bona, spoof = values[is_bona], values[~is_bona]
    attacks = {}
    counts = {"bonafide": int(is_bona.sum())}
    for attack in pd.unique(scores.loc[~is_bona, "attack"]):
        own = values[(scores["attack"] == attack).to_numpy()]
        attacks[str(attack)] = 100.0 * compute_eer(bona, own)[0]
        counts[str(attack)] = int(own.size)
    metrics: dict[str, float | None] = dict.fromkeys(STAGE_KEYS)
    not_available: dict[str, str] = {}
    metrics["pooled_eer"] = 100.0 * compute_eer(bona, spoof)[0]
    metrics["min_dcf"] = min_dcf(bona, spoof)[0]
    record = _stored_calibration(ref, ckpt.stage)
    if record is not None:
        cal = _calibration(record)
        metrics["act_dcf"] = act_dcf(cal.llr(bona), cal.llr(spoof))
        metrics["cllr"] = cllr(cal.llr(bona), cal.llr(spoof))
    else:
        why = ("the checkpoint's run fitted no score calibration; train with "
               "data.calibration_split set to get one")
        not_available["act_dcf"] = not_available["cllr"] = why
    asv = asv_scores if asv_scores is not None else config_asv
    if asv is not None:
        metrics["min_tdcf"] = min_tdcf_2019(scores, asv)
    else:
        not_available["min_tdcf"] = ("it needs the organisers' ASV scores of the same "
                                     "partition: --asv-scores FILE")
    prepared = (f"as the run's test clips: mono at {ckpt.sample_rate} Hz, level "
                f"{ckpt.level}" + (f" ({ckpt.level_db} dBFS)" if ckpt.level_db is not None
                                   else "")
                + (f", the mean score of windows of {ckpt.num_samples} samples every "
                   f"{max(1, ckpt.num_samples // 2)} over the whole file" if whole_file else
                   f", the first {ckpt.num_samples} samples")
                + " (shorter files repeated)")
    return Evaluation(checkpoint=ref.path, data=described, attacks=attacks, counts=counts,
                      metrics=metrics, not_available=not_available, scores=scores,
                      prepared=prepared, calibration=record,
                      extra={"stage": ckpt.stage, "trained_on": ckpt.trained_on,
                             "score_format": metrics_cfg.get("score_format", "asvspoof2019"),
                             "asv_scores": None if asv is None else str(asv)})


def evaluation_outputs(fmt: str) -> tuple[str, str, str]:
    """``(score file, metrics file, DET plot)`` names in an ``--out`` folder."""
    return ("scores.tsv" if fmt == "asvspoof5" else "scores.txt", "metrics.json", "det.png")


def write_evaluation(result: Evaluation, out: Path, fmt: str | None = None) -> list[Path]:
    """Write ``out`` (a new folder, all or nothing): the scores in the ASVspoof 2019 or 5
    format (``fmt``, default: the checkpoint's ``metrics.score_format``; the 5 format with
    its key file), ``metrics.json`` and the DET plot ``det.png``. Returns the files."""
    fmt = fmt or str(result.extra.get("score_format") or "asvspoof2019")
    score_name, metrics_name, det_name = evaluation_outputs(fmt)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CLSpoofError(f"{out}: exists and is not an empty folder; choose another --out "
                           "(nothing was overwritten)")
    curves = {attack: (result.scores.loc[result.scores["key"] == "bonafide", "score"].to_numpy(),
                       result.scores.loc[result.scores["attack"] == attack, "score"].to_numpy())
              for attack in result.attacks}
    bona = result.scores.loc[result.scores["key"] == "bonafide", "score"].to_numpy()
    curves["pooled"] = (bona, result.scores.loc[result.scores["key"] == "spoof",
                                                "score"].to_numpy())
    with atomic_dir(out) as tmp:
        write_scores(tmp / score_name, result.scores, fmt)
        atomic_write_text(tmp / metrics_name, json.dumps(result.to_json(), indent=2) + "\n")
        write_det_plot(tmp / det_name, curves, f"{result.checkpoint.name} on {result.data}")
    written = [out / score_name, out / metrics_name, out / det_name]
    if fmt == "asvspoof5":
        written.insert(1, (out / score_name).with_suffix(".keys.tsv"))
    return written

