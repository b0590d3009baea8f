"""Read, check, plan and cache the data of a run (the benchmark's inputs).

:func:`load_benchmark_data` refuses to start on bad data: metadata problems
anywhere in the table, missing files (unless ``allow_missing``) and
undecodable audio among the rows used all raise one :class:`DataError`
listing every problem with its file. Only the rows a plan uses are decoded.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_spoof.benchmark.planning import (
    ExperiencePlan,
    SourcePlanSpec,
    cap_sources,
    configured_attacks,
    family_candidates,
    plan_evaluation_set,
    plan_experiences,
    plan_families,
    plan_sources,
    resolve_families,
    resplit_by_speaker,
    split_eval_only_attacks,
)
from cl_spoof.config import DataConfig, SourceConfig
from cl_spoof.data import read_source
from cl_spoof.data.cache import CachedWaveforms, WaveformCache, cache_samples
from cl_spoof.data.checks import check_table, cross_source_speakers
from cl_spoof.data.corpora import prefix_utt_ids
from cl_spoof.data.table import data_record, make_table
from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.labels import NO_ATTACK


@dataclass
class BenchmarkData:
    """The checked table, the cached audio of the rows used, and the plans.

    ``plans`` are the test experiences (one per EER-matrix column); ``stages`` the
    training experiences when they differ (``experience_by: family``: one per learned
    family, ``families`` naming the columns each one learns; the columns of no family
    are held-out systems, never learned), else None: one per plan.
    """

    table: pd.DataFrame
    waveforms: CachedWaveforms
    plans: list[ExperiencePlan]
    source: str
    stages: list[ExperiencePlan] | None = None
    families: dict[str, tuple[str, ...]] | None = None
    _record: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def training_plans(self) -> list[ExperiencePlan]:
        """The training experiences, in order."""
        return self.plans if self.stages is None else self.stages

    def record(self) -> dict:
        """What a run is started on (:func:`~cl_spoof.data.table.data_record`): every row
        of the table, and as each file's identity its size and the CRC-32 of the samples
        the run decoded from it (what training reads, whatever the file's time stamps).
        Computed once."""
        if self._record is None:
            identities = []
            for i, path in enumerate(self.table["path"]):
                try:
                    size = os.stat(path).st_size
                except OSError:
                    size = -1
                row = np.ascontiguousarray(self.waveforms.data[i, : self.waveforms.lengths[i]])
                identities.append(f"{size}:{zlib.crc32(row.data):08x}")
            self._record = data_record(self.table, identities)
        return self._record


def resolve_source(cfg: DataConfig,
                   progress: Callable[[str, int, int], None] | None = None) -> Path:
    """The data source path; builds the demo corpus when ``source`` is ``demo``."""
    if cfg.source == "demo":
        from cl_spoof.demo.corpus import ensure_demo_corpus

        report = None if progress is None else (
            lambda i, n: progress("building the demo corpus (first use only)", i, n))
        return ensure_demo_corpus(seed=cfg.demo_seed, progress=report)
    return Path(cfg.source).expanduser()


def source_splits(d: DataConfig, src: SourceConfig) -> dict[str, str]:
    """The source's split name -> the run's split it becomes (train, test, calibration)."""
    out = {src.train_split or d.train_split: d.train_split,
           src.test_split or d.test_split: d.test_split}
    if d.calibration_split is not None:
        out[src.calibration_split or d.calibration_split] = d.calibration_split
    return out


def read_named_source(cfg: DataConfig, src: SourceConfig) -> pd.DataFrame:
    """The rows of one of ``data.sources``, ready to join the others.

    Its splits are mapped to the run's (:func:`source_splits`;
    rows of other splits are left out), ``utt_id`` is prefixed with the source
    name, a ``source`` column names it, its speakers become shared identities
    (:func:`map_speakers` with its ``speaker_map``), and with several sources learned
    attack by attack (or family by family) its attacks are prefixed too
    (``la19.A01``: attack names become columns and file names, so no ``/``) so they
    stay apart.
    Errors are prefixed with the config key of the source.
    """
    try:
        table = read_source(src.path, layout=src.layout, **src.options)
    except CLSpoofError as exc:
        raise type(exc)(f"data.sources {src.name!r}: {exc}") from None
    mapping = source_splits(cfg, src)
    table = table[table["split"].isin(list(mapping))].copy()
    table["split"] = table["split"].map(mapping)
    table = prefix_utt_ids(table, src.name)
    if src.speaker_map:
        table["speaker"] = map_speakers(table["speaker"], src.speaker_map)
    if cfg.experience_by != "source" and len(cfg.sources) > 1:
        spoof = table["attack"] != NO_ATTACK
        table.loc[spoof, "attack"] = src.name + "." + table.loc[spoof, "attack"]
    table["source"] = src.name
    return table


def map_speakers(speakers: pd.Series, speaker_map: Mapping[str, str]) -> pd.Series:
    """Each speaker id rewritten by the first pattern of ``speaker_map`` (regular
    expression -> replacement, :func:`re.sub`) that matches it; others unchanged."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in speaker_map.items()]

    def one(speaker: str) -> str:
        for pattern, repl in compiled:
            if pattern.search(speaker):
                return pattern.sub(repl, speaker)
        return speaker

    return speakers.astype(str).map(one)


def apply_resplit(table: pd.DataFrame, cfg: DataConfig) -> pd.DataFrame:
    """``table`` with ``data.resplit_by_speaker``'s split when configured (else as it is)."""
    r = cfg.resplit_by_speaker
    if r is None:
        return table
    return resplit_by_speaker(table, r.seed, r.test_fraction, cfg.train_split, cfg.test_split)


def read_sources_table(cfg: DataConfig) -> pd.DataFrame:
    """One table of every source of ``data.sources`` (extra columns kept, empty elsewhere),
    re-split by speaker when ``data.resplit_by_speaker`` says so."""
    tables = [read_named_source(cfg, src) for src in cfg.sources]
    return apply_resplit(make_table(pd.concat(tables, ignore_index=True), extra="all"), cfg)


def read_run_table(cfg: DataConfig,
                   progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, Path]:
    """The checked utterance table of ``cfg.data`` and its source path.

    Metadata problems anywhere in the table and missing files (unless
    ``allow_missing``) raise one :class:`DataError` listing every problem.
    """
    if cfg.sources:
        table = read_sources_table(cfg)
        report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False,
                             splits_read=splits_read(cfg))
        report.raise_if_problems("data.sources")
        return report.table, Path("data.sources")
    source = resolve_source(cfg, progress)
    if cfg.source != "demo" and not source.exists():
        raise DataError(f"data.source: {source}: no such file or folder; point it at your "
                        "corpus root or manifest (--data PATH, or edit the config)")
    table = read_source(source)
    table = split_eval_only_attacks(table, cfg.eval_only_attacks, cfg.eval_only_test_fraction,
                                    seed=0, train_split=cfg.train_split,
                                    test_split=cfg.test_split)
    table = apply_resplit(table, cfg)
    report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False,
                         splits_read=splits_read(cfg))
    report.raise_if_problems(source)
    return report.table, source


def splits_read(cfg: DataConfig) -> frozenset[str]:
    """The splits of the table a run reads: train, test and calibration, and ``eval`` when
    eval-only attacks are learned from it."""
    return frozenset(s for s in (cfg.train_split, cfg.test_split, cfg.calibration_split,
                                 "eval" if cfg.eval_only_attacks else None) if s is not None)


def load_benchmark_data(
    cfg: DataConfig,
    seed: int = 0,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchmarkData:
    """Read, check, plan and cache the data of a run; refuses to start on bad data.

    Metadata problems anywhere in the table, missing files (unless
    ``allow_missing``) and undecodable audio among the rows used all raise one
    :class:`DataError` listing every problem with its file.
    """
    if on_stage is not None:
        on_stage("preparing data source")
    table, source = read_run_table(cfg, progress)
    if on_stage is not None and len(cfg.sources) > 1:
        shared = cross_source_speakers(table, cfg.train_split, scored_splits(cfg))
        if shared:
            on_stage(f"warning: {len(shared)} speaker(s) in the train split of one source and "
                     f"the test split of another ({', '.join(p.where for p in shared[:5])}"
                     f"{', ...' if len(shared) > 5 else ''}); cl-spoof data check lists them, "
                     "data.resplit_by_speaker draws a speaker-disjoint split")
    return prepare_benchmark_data(table, configured_attacks(table, cfg), cfg, seed, str(source),
                                  on_stage, progress)


def prepare_benchmark_data(
    table: pd.DataFrame,
    attacks: Sequence[str],
    cfg: DataConfig,
    seed: int,
    source: str,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchmarkData:
    """Plan the experiences of ``attacks`` (or of the sources, with ``experience_by:
    source``; of the families, with ``experience_by: family``) and cache the audio of the
    rows they use."""
    stages: list[ExperiencePlan] | None = None
    families: dict[str, tuple[str, ...]] | None = None
    if cfg.experience_by == "source":
        plans = plan_sources(table, [SourcePlanSpec(s.name, s.max_train, s.max_test)
                                     for s in cfg.sources],
                             cfg.train_split, cfg.test_split, seed, cfg.calibration_split)
    elif cfg.experience_by == "family":
        if cfg.sources:
            table = cap_sources(table, [SourcePlanSpec(s.name, s.max_train, s.max_test)
                                        for s in cfg.sources], _run_splits(cfg), seed)
        resolved = resolve_families(
            cfg.families, family_candidates(table, [cfg.train_split, cfg.test_split]))
        planned = plan_families(table, resolved, cfg.train_split, cfg.test_split,
                                cfg.bonafide_sharing, seed, cfg.max_train_per_attack,
                                cfg.max_test_per_attack, cfg.max_bonafide_test,
                                cfg.calibration_split, cfg.held_out_families)
        plans, stages, families = planned.plans, planned.stages, planned.families
    else:
        if cfg.sources:  # each source's caps, before the attacks are planned
            table = cap_sources(table, [SourcePlanSpec(s.name, s.max_train, s.max_test)
                                        for s in cfg.sources], _run_splits(cfg), seed)
        plans = plan_experiences(table, attacks, cfg.train_split, cfg.test_split,
                                 cfg.bonafide_sharing, seed, cfg.max_train_per_attack,
                                 cfg.max_test_per_attack, cfg.max_bonafide_test,
                                 cfg.calibration_split)
    return _cache_plans(table, plans, cfg, source, on_stage, progress, stages, families)


def load_evaluation_set(path: str | Path, cfg: DataConfig, seed: int = 0,
                        on_stage: Callable[[str], None] | None = None,
                        progress: Callable[[str, int, int], None] | None = None,
                        key: str = "data.pretrained_eval") -> BenchmarkData:
    """A labelled set that is only ever evaluated (``data.pretrained_eval``): a manifest
    or a corpus root, every row whatever its split, one test experience per attack
    (:func:`~cl_spoof.benchmark.planning.plan_evaluation_set`, capped by
    ``max_test_per_attack`` / ``max_bonafide_test``), decoded like the run's own audio
    (``cfg``: rate, cache). Errors are prefixed with ``key``."""
    if on_stage is not None:
        on_stage(f"preparing {key}")
    source = Path(path).expanduser()
    try:
        table = read_source(source)
        report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False)
        report.raise_if_problems(source)
        table = report.table.reset_index(drop=True)
        plans = plan_evaluation_set(table, seed, cfg.max_test_per_attack,
                                    cfg.max_bonafide_test)
        return _cache_plans(table, plans, cfg, str(source), on_stage, progress)
    except CLSpoofError as exc:
        raise type(exc)(f"{key}: {exc}") from None


def _cache_plans(table: pd.DataFrame, plans: list[ExperiencePlan], cfg: DataConfig,
                 source: str, on_stage: Callable[[str], None] | None,
                 progress: Callable[[str, int, int], None] | None,
                 stages: list[ExperiencePlan] | None = None,
                 families: dict[str, tuple[str, ...]] | None = None) -> BenchmarkData:
    """The rows ``plans`` (and training ``stages``) use, renumbered, with their audio
    decoded into the cache."""
    used = np.unique(np.concatenate([np.concatenate([p.train_rows, p.test_rows,
                                                     p.calibration_rows])
                                     for p in plans + (stages or [])]))
    sub = table.iloc[used].reset_index(drop=True)
    remap = np.full(len(table), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))

    def remapped(p: ExperiencePlan) -> ExperiencePlan:
        return ExperiencePlan(p.attack, remap[p.train_rows], remap[p.test_rows],
                              remap[p.calibration_rows])

    plans = [remapped(p) for p in plans]
    stages = None if stages is None else [remapped(p) for p in stages]
    if on_stage is not None:
        on_stage("decoding audio into the cache")
    cache = WaveformCache(cfg.cache_dir, sample_rate=cfg.sample_rate,
                          max_samples=cache_samples(cfg.num_samples))
    waveforms, problems = cache.load(
        sub["path"].tolist(),
        progress=None if progress is None else (lambda i, n: progress("decode audio", i, n)))
    if problems:
        from cl_spoof.data.checks import CheckReport

        CheckReport(sub, problems).raise_if_problems(source)
    return BenchmarkData(table=sub, waveforms=waveforms, plans=plans, source=source,
                         stages=stages, families=families)


def _run_splits(cfg: DataConfig) -> list[str]:
    """The run's train, test (and calibration) split names, in that order."""
    return [cfg.train_split, cfg.test_split] + (
        [cfg.calibration_split] if cfg.calibration_split else [])


def scored_splits(cfg: DataConfig) -> tuple[str, ...]:
    """The splits a run scores: its test split and its calibration split, if any."""
    return (cfg.test_split,) + ((cfg.calibration_split,) if cfg.calibration_split else ())
