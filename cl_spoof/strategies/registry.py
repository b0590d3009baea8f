"""Every continual-learning strategy cl-spoof can run, one :class:`StrategySpec` each.

A spec (:mod:`cl_spoof.strategies.spec`) holds everything about a strategy in one
place: its name and one-line summary, its hyper-parameters (config keys
``strategy.<key>``), its builder and its checkpoint state. **The registry discovers
the methods**: every module or package directly under
:mod:`cl_spoof.strategies.methods` (names starting with ``_`` aside) exposes
``SPECS``, and :data:`STRATEGIES` holds them in a fixed order: the modules by name
(``baselines``, ``dfwf``, ``owm``, ``rego``, ``self_distillation``), each module's specs
in its ``SPECS`` order. That order is the one of ``--help`` and the README table.
**Adding a strategy is one new module (or package) under** ``methods/``.

This module stays light: the method modules import Avalanche and their plugins
inside their builders, so reading a config does not pay for them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cl_spoof.errors import ConfigError, did_you_mean, suggestion
from cl_spoof.strategies import methods
from cl_spoof.strategies.spec import BuildArgs, HyperParameter, Rule, StrategySpec

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.config import RunConfig

__all__ = ["STRATEGIES", "BuildArgs", "HyperParameter", "Rule", "StrategySpec", "build_strategy",
           "check_strategy_name", "default_label", "describe_hyperparameters", "get_spec",
           "hyperparameters", "markdown_table", "resolve_strategy"]


def discover_specs() -> dict[str, StrategySpec]:
    """The specs of every module under :mod:`cl_spoof.strategies.methods`, in registry order."""
    found: dict[str, StrategySpec] = {}
    names = sorted({m.name for m in pkgutil.iter_modules(methods.__path__)
                    if not m.name.startswith("_")})
    for name in names:
        module = importlib.import_module(f"{methods.__name__}.{name}")
        specs = getattr(module, "SPECS", None)
        if specs is None:
            raise AssertionError(f"{module.__name__} declares no SPECS (an empty tuple if it "
                                 "adds no strategy)")
        for spec in specs:
            if spec.name in found:
                raise AssertionError(f"strategy {spec.name!r} is declared twice "
                                     f"(again in {module.__name__})")
            found[spec.name] = spec
    return found


STRATEGIES: dict[str, StrategySpec] = discover_specs()


def check_strategy_name(name: str) -> str:
    """Return ``name`` if registered, else raise :class:`ConfigError` listing the names."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}"
                          + did_you_mean(name, STRATEGIES))
    return name


def get_spec(name: str) -> StrategySpec:
    """The spec of strategy ``name`` (:class:`ConfigError` listing the names if unknown)."""
    return STRATEGIES[check_strategy_name(name)]


def hyperparameters() -> dict[str, HyperParameter]:
    """Every declared hyper-parameter, by key (a key shared by strategies is declared once)."""
    found: dict[str, HyperParameter] = {}
    for spec in STRATEGIES.values():
        for hp in spec.hyperparameters:
            other = found.setdefault(hp.name, hp)
            if other != hp:
                raise AssertionError(f"strategy.{hp.name} is declared twice, differently")
    return found


def build_strategy(args: BuildArgs) -> SupervisedTemplate:
    """The Avalanche strategy named by ``args.cfg.strategy.name``."""
    return get_spec(args.cfg.strategy.name).build(args)


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value)


def _value_text(value: Any) -> str:
    """A hyper-parameter value as a label writes it (``3.0`` -> ``3``, lists in brackets)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def describe_hyperparameters(name: str, values: Mapping[str, Any],
                             only_changed: bool = False) -> list[str]:
    """``key=value`` for each hyper-parameter strategy ``name`` declares (a resolved config
    holds every strategy's; the others are left out), in declaration order; its default
    where ``values`` lacks it; with ``only_changed``, those that differ from the default."""
    spec = STRATEGIES.get(name)
    out: list[str] = []
    for hp in spec.hyperparameters if spec is not None else ():
        value = values.get(hp.name, hp.default)
        default = list(hp.default) if isinstance(hp.default, tuple) else hp.default
        given = list(value) if isinstance(value, tuple | list) else value
        if not only_changed or given != default:
            out.append(f"{hp.name}={_value_text(value)}")
    return out


def default_label(name: str, values: Mapping[str, Any]) -> str:
    """A run's label when none is given: the strategy's name, then its hyper-parameters
    whose values differ from the declared defaults (``dfwf (kd_weight=3)``). An unknown
    strategy name is the label as it is."""
    changed = describe_hyperparameters(name, values, only_changed=True)
    return f"{name} ({', '.join(changed)})" if changed else name


def markdown_table() -> str:
    """The README's strategy table, generated from :data:`STRATEGIES`."""
    lines = ["| name | what | keeps old audio | hyper-parameters (defaults) |",
             "|---|---|---|---|"]
    for spec in STRATEGIES.values():
        params = ", ".join(f"`{hp.name}` {_default_text(hp.default)}"
                           for hp in spec.hyperparameters) or "—"
        lines.append(f"| `{spec.name}` | {spec.summary} | {spec.keeps_old_audio} | {params} |")
    return "\n".join(lines) + "\n"


def resolve_strategy(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its strategy section checked against the registry and completed.

    The name must be registered, every other key of ``strategy:`` a declared
    hyper-parameter of the right type (converted like any config value) that obeys
    its rule; every declared hyper-parameter is then present, with its default where
    the config gives none, in declaration order. Idempotent: a resolved config comes
    back as it is. :class:`ConfigError` names the key.
    """
    from cl_spoof.config import StrategyConfig, check_value

    s = cfg.strategy
    check_strategy_name(s.name)
    declared = hyperparameters()
    unknown = [k for k in s.hyperparameters if k not in declared]
    if unknown:
        close = suggestion(unknown[0], declared)
        raise ConfigError(f"unknown config key 'strategy.{unknown[0]}' (valid keys here: "
                          f"{', '.join(['name', *sorted(declared)])})"
                          + (f"; did you mean 'strategy.{close}'?" if close else ""))
    values = {k: hp.default for k, hp in declared.items()}
    for key, value in s.hyperparameters.items():
        values[key] = check_value(f"strategy.{key}", value, declared[key].type)
    for key, hp in declared.items():
        hp.check(values[key])
    given = s.hyperparameters
    if list(values) == list(given) and all(type(v) is type(given[k]) and v == given[k]
                                           for k, v in values.items()):
        return cfg
    return replace(cfg, strategy=StrategyConfig(name=s.name, hyperparameters=values))
