"""Typed run configuration, validated at the edge.

YAML files are parsed into frozen dataclasses (:mod:`cl_spoof.config.schema`, the
sections and their checks; :mod:`cl_spoof.config.loader`, the YAML); an unknown
key, a wrong type or an out-of-range value raises :class:`ConfigError` naming the
key (e.g. ``train.epochs``). Configs are never mutated: overrides build a new object
with :func:`dataclasses.replace` or :func:`with_overrides`. The strategy and metrics
sections are completed and checked by their registries; code that runs things
loads configs with ``cl_spoof.workflows.setup.load_run_config``.
"""

from __future__ import annotations

from cl_spoof.config.loader import (
    apply_overrides,
    check_value,
    config_differences,
    config_digest,
    config_from_dict,
    default_config_path,
    load_config,
    located_error,
    parse_yaml,
    to_dict,
    to_yaml,
    with_overrides,
)
from cl_spoof.config.schema import (
    LEVEL_MODES,
    LR_SCHEDULES,
    MAX_BATCH,
    MAX_NUM_SAMPLES,
    MAX_SEED,
    MAX_THREADS,
    MAX_WORKERS,
    RAWBOOST_ALGORITHMS,
    SCORE_FORMATS,
    AugmentConfig,
    DataConfig,
    MetricsConfig,
    ModelSpec,
    RunConfig,
    SelfDistillationConfig,
    SourceConfig,
    StrategyConfig,
    TrainConfig,
    validate,
)

__all__ = [
    "LEVEL_MODES",
    "LR_SCHEDULES",
    "MAX_BATCH",
    "MAX_NUM_SAMPLES",
    "MAX_SEED",
    "MAX_THREADS",
    "MAX_WORKERS",
    "RAWBOOST_ALGORITHMS",
    "SCORE_FORMATS",
    "AugmentConfig",
    "DataConfig",
    "MetricsConfig",
    "ModelSpec",
    "RunConfig",
    "SelfDistillationConfig",
    "SourceConfig",
    "StrategyConfig",
    "TrainConfig",
    "apply_overrides",
    "check_value",
    "config_differences",
    "config_digest",
    "config_from_dict",
    "default_config_path",
    "load_config",
    "located_error",
    "parse_yaml",
    "to_dict",
    "to_yaml",
    "validate",
    "with_overrides",
]
