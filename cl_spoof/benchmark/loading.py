"""Read, check, plan and cache the data of a run (the benchmark's inputs).

:func:`load_benchmark_data` refuses to start on bad data: metadata problems
anywhere in the table, missing files (unless ``allow_missing``) and
undecodable audio among the rows used all raise one :class:`DataError`
listing every problem with its file. Only the rows a plan uses are decoded.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_spoof.benchmark.planning import (
    ExperiencePlan,
    SourcePlanSpec,
    cap_sources,
    configured_attacks,
    plan_experiences,
    plan_sources,
    split_eval_only_attacks,
)
from cl_spoof.config import DataConfig, SourceConfig
from cl_spoof.data import read_source
from cl_spoof.data.cache import CachedWaveforms, WaveformCache, cache_samples
from cl_spoof.data.checks import check_table
from cl_spoof.data.corpora import prefix_utt_ids
from cl_spoof.data.table import NO_ATTACK, data_record, make_table
from cl_spoof.errors import CLSpoofError


@dataclass
class BenchmarkData:
    """The checked table, the cached audio of the rows used, and the plans."""

    table: pd.DataFrame
    waveforms: CachedWaveforms
    plans: list[ExperiencePlan]
    source: str
    _record: dict | None = field(default=None, init=False, repr=False, compare=False)

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
    name, a ``source`` column names it, and with several sources learned attack
    by attack its attacks are prefixed too (``la19.A01``: attack names become
    columns and file names, so no ``/``) so they stay apart.
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
    if cfg.experience_by == "attack" and len(cfg.sources) > 1:
        spoof = table["attack"] != NO_ATTACK
        table.loc[spoof, "attack"] = src.name + "." + table.loc[spoof, "attack"]
    table["source"] = src.name
    return table


def read_sources_table(cfg: DataConfig) -> pd.DataFrame:
    """One table of every source of ``data.sources`` (extra columns kept, empty elsewhere)."""
    tables = [read_named_source(cfg, src) for src in cfg.sources]
    return make_table(pd.concat(tables, ignore_index=True), extra="all")


def read_run_table(cfg: DataConfig,
                   progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, Path]:
    """The checked utterance table of ``cfg.data`` and its source path.

    Metadata problems anywhere in the table and missing files (unless
    ``allow_missing``) raise one :class:`DataError` listing every problem.
    """
    if cfg.sources:
        table = read_sources_table(cfg)
        report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False)
        report.raise_if_problems("data.sources")
        return report.table, Path("data.sources")
    source = resolve_source(cfg, progress)
    table = read_source(source)
    table = split_eval_only_attacks(table, cfg.eval_only_attacks, cfg.eval_only_test_fraction,
                                    seed=0, train_split=cfg.train_split,
                                    test_split=cfg.test_split)
    report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False)
    report.raise_if_problems(source)
    return report.table, source


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
    source``) and cache the audio of the rows they use."""
    if cfg.experience_by == "source":
        plans = plan_sources(table, [SourcePlanSpec(s.name, s.max_train, s.max_test)
                                     for s in cfg.sources],
                             cfg.train_split, cfg.test_split, seed, cfg.calibration_split)
    else:
        if cfg.sources:  # each source's caps, before the attacks are planned
            splits = [cfg.train_split, cfg.test_split] + (
                [cfg.calibration_split] if cfg.calibration_split else [])
            table = cap_sources(table, [SourcePlanSpec(s.name, s.max_train, s.max_test)
                                        for s in cfg.sources], splits, seed)
        plans = plan_experiences(table, attacks, cfg.train_split, cfg.test_split,
                                 cfg.bonafide_sharing, seed, cfg.max_train_per_attack,
                                 cfg.max_test_per_attack, cfg.max_bonafide_test,
                                 cfg.calibration_split)
    used = np.unique(np.concatenate([np.concatenate([p.train_rows, p.test_rows,
                                                     p.calibration_rows]) for p in plans]))
    sub = table.iloc[used].reset_index(drop=True)
    remap = np.full(len(table), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    plans = [ExperiencePlan(p.attack, remap[p.train_rows], remap[p.test_rows],
                            remap[p.calibration_rows]) for p in plans]
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
    return BenchmarkData(table=sub, waveforms=waveforms, plans=plans, source=source)
