"""The config of code that runs things: loaded, then completed and checked by the registries.

:func:`resolve` hands the strategy section to the strategy registry (name,
hyper-parameters with their defaults, types and rules) and the metrics section to
the metric registry (known names, their inputs). Every workflow resolves the config
it is given, so a config built in Python (``config_from_dict``, ``with_overrides``)
is checked as fully as a file; :func:`load_run_config` is how the CLI and the
benchmarks read a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cl_spoof.config import RunConfig, default_config_path, load_config, located_error
from cl_spoof.errors import ConfigError
from cl_spoof.metrics.definitions import resolve_metrics
from cl_spoof.strategies.registry import resolve_strategy


def resolve(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its strategy and metrics sections resolved by their registries
    (idempotent and cheap: a resolved config comes back as it is)."""
    return resolve_metrics(resolve_strategy(cfg))


def load_run_config(path: str | Path | None, overrides: Sequence[str] = (),
                    origin: str = "override") -> RunConfig:
    """:func:`cl_spoof.config.load_config` (``None``: the demo config), then :func:`resolve`;
    every error names the file or the override at fault (``origin``: what gave the
    overrides, e.g. ``--set``)."""
    cfg = load_config(path, overrides, origin=origin)
    try:
        return resolve(cfg)
    except ConfigError as exc:
        raise located_error(exc, default_config_path() if path is None else path,
                            overrides, origin) from None
