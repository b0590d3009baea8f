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
    absolute_paths,
    apply_overrides,
    check_value,
    config_differences,
    config_digest,
    config_from_dict,
    default_config_path,
    load_config,
    located_error,
    override_at_fault,
    override_config,
    parse_yaml,
    shipped_configs,
    to_dict,
    to_yaml,
    with_absolute_paths,
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
    TRAIN_LOGGERS,
    AugmentConfig,
    DataConfig,
    MetricsConfig,
    ModelSpec,
    RunConfig,
    SelfDistillationConfig,
    SourceConfig,
    StrategyConfig,
    TrainConfig,
    field_doc,
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
    "TRAIN_LOGGERS",
    "AugmentConfig",
    "DataConfig",
    "MetricsConfig",
    "ModelSpec",
    "RunConfig",
    "SelfDistillationConfig",
    "SourceConfig",
    "StrategyConfig",
    "TrainConfig",
    "absolute_paths",
    "apply_overrides",
    "check_value",
    "config_differences",
    "config_digest",
    "config_from_dict",
    "default_config_path",
    "field_doc",
    "load_config",
    "located_error",
    "override_at_fault",
    "override_config",
    "parse_yaml",
    "shipped_configs",
    "to_dict",
    "to_yaml",
    "validate",
    "with_absolute_paths",
    "with_overrides",
]
