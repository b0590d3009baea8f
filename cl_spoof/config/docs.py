"""Every config key with its default and documentation, as a commented YAML file.

The documentation is each field's ``doc`` metadata (:func:`cl_spoof.config.schema.field_doc`);
the strategy's hyper-parameters come from the strategy registry, above this package,
so the caller passes them in (:class:`StrategyKey`). The text loads as a config
(``cl-spoof config defaults > my.yaml`` is a valid starting point).
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cl_spoof.config.schema import RunConfig, StrategyConfig, field_doc

WIDTH = 92


@dataclass(frozen=True)
class StrategyKey:
    """One ``strategy.<name>`` hyper-parameter: its default, meaning and the strategies
    that read it."""

    name: str
    default: Any
    doc: str
    used_by: tuple[str, ...]


def _value(value: Any) -> str:
    """A YAML value on one line (flow style)."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _comment(text: str, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}" for line in textwrap.wrap(text, WIDTH - len(indent) - 2,
                                                          break_on_hyphens=False)]


def _section(cls: type, indent: str, strategy_keys: Sequence[StrategyKey]) -> list[str]:
    lines: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if cls is StrategyConfig and f.name == "hyperparameters":
            for key in strategy_keys:
                lines += _comment(f"{key.doc} (read by: {', '.join(key.used_by)})", indent)
                lines.append(f"{indent}{key.name}: {_value(key.default)}")
            continue
        lines += _comment(field_doc(f), indent)
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp) and default is not None:
            lines.append(f"{indent}{f.name}:")
            lines += _section(tp, indent + "  ", strategy_keys)
            continue
        args = typing.get_args(tp)
        item = args[0] if typing.get_origin(tp) is tuple and args else None
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            lines.append(f"{indent}{f.name}: []")
            lines.append(f"{indent}# each entry:")
            for sub in dataclasses.fields(item):
                lines += _comment(field_doc(sub), indent + "#   ")
                lines.append(f"{indent}#   {sub.name}: {_value(_default(sub))}")
            continue
        lines.append(f"{indent}{f.name}: {_value(default)}")
    return lines


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def defaults_text(strategy_keys: Sequence[StrategyKey] = ()) -> str:
    """The default config as commented YAML: every key, its default and what it does."""
    head = ["# Every config key with its default. Relative paths in a config file are",
            "# relative to the file's folder. cl-spoof run CONFIG --set KEY=VALUE changes one",
            "# key for one command."]
    return "\n".join(head + _section(RunConfig, "", strategy_keys)) + "\n"
