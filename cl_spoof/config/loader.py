"""YAML to typed configs and back: the only code that reads or writes config YAML.

:func:`load_config` reads a file (plus dotted ``KEY=VALUE`` overrides), refuses
duplicate keys and YAML anchors/aliases before anything is built, converts every
value to its field's type (:func:`check_value`) and runs the section checks of
:mod:`cl_spoof.config.schema`. Every failure is a :class:`ConfigError` naming the file
or override and the key. Configs are never mutated: :func:`with_overrides` builds a
new one.

One rule for paths: a relative path in a config file (``data.source``,
``data.sources[].path``, ``data.cache_dir``, ``data.pretrained_eval``, ``model.init``,
``metrics.asv_scores``, ``train.feature_cache_dir``, ``model.overrides.checkpoint``) is
relative to the folder of that file, as a manifest's paths are relative to the manifest;
one given in an override is relative to the working folder. Loading makes them absolute, so a run
stores absolute paths. The configs shipped in ``cl_spoof/configs/`` load by name
(``asvspoof2019_la``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from cl_spoof.config.schema import RunConfig, StrategyConfig, validate
from cl_spoof.errors import ConfigError, suggestion

_NONE = type(None)


def check_value(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to the annotation ``tp`` (``1e4`` -> 10000 for an int, a comma
    string -> a tuple); :class:`ConfigError` naming ``key`` when it does not fit."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        errors = []
        for a in args:
            if a is _NONE:
                continue
            try:
                return check_value(key, value, a)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            return tuple(_build(args[0], v, f"{key}[{i}].") for i, v in enumerate(value))
        return tuple(check_value(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        if len(args) == 2 and args[1] is not Any:  # typed values (data.families)
            for k in value:
                if not isinstance(k, str):
                    raise ConfigError(f"{key}: expected names as keys, got {k!r}")
            return {k: check_value(f"{key}.{k}", v, args[1]) for k, v in value.items()}
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # 1e4, 6.46e4
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _plain(key: str, value: Any) -> Any:
    """``value`` when it is plain YAML data (scalars, lists, string-keyed mappings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(f"{key}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(f"{key}.{k}", v) for k, v in value.items()}
    raise ConfigError(f"{key}: expected a plain YAML value, got {type(value).__name__}")


def _build_strategy(data: dict[str, Any], prefix: str) -> StrategyConfig:
    """``strategy:``: ``name`` (a string) and hyper-parameters held as plain values; the
    strategy registry declares, types and checks them (``resolve_strategy``)."""
    name = check_value(f"{prefix}name", data.get("name", "naive"), str)
    values = {k: _plain(f"{prefix}{k}", v) for k, v in data.items() if k != "name"}
    return StrategyConfig(name=name, hyperparameters=values)


def _did_you_mean_key(prefix: str, key: str, valid: Iterable[str]) -> str:
    """``"; did you mean '<prefix><close key>'?"`` for an unknown key, or ``""``."""
    best = suggestion(key, valid)
    return f"; did you mean '{prefix}{best}'?" if best is not None and best != key else ""


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    if cls is StrategyConfig:
        return _build_strategy(data, prefix)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (valid keys here: "
                          f"{', '.join(sorted(fields))})"
                          + _did_you_mean_key(prefix, unknown[0], fields))
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = f"{prefix}{name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{key}.")
        else:
            kwargs[name] = check_value(key, value, tp)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any] | None) -> RunConfig:
    """Validate a plain mapping (parsed YAML) into a :class:`RunConfig`: types and the
    section checks (the registries' checks come with ``resolve``)."""
    cfg = _build(RunConfig, data or {}, "")
    validate(cfg)
    return cfg


# --------------------------------------------------------------------------- YAML text


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a number as YAML 1.2 does (PyYAML follows
    YAML 1.1, where a float needs a dot: ``1e-3`` would be the string '1e-3'), and
    refusing anchors and aliases as it meets them: a config never needs them, and
    nested aliases make a small file expand into a huge structure."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML anchors and aliases "
                              "(&name, *name) are not allowed in a config; write the values "
                              "out")
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _refuse_duplicates(node: yaml.Node, path: str = "") -> None:
    """:class:`ConfigError` naming the first key given twice in one mapping, and its lines."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(f"line {line}: key '{dotted}' is given twice (first on line "
                                  f"{first[key]}); keep one")
            first[key] = line
            _refuse_duplicates(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{path}[{i}]")


def parse_yaml(text: str) -> Any:
    """YAML text as plain data (safe loader; ``1e-3`` is a number). A key given twice in
    one mapping and any anchor or alias are a :class:`ConfigError` naming the line;
    malformed YAML is a :class:`yaml.YAMLError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- overrides


def _unknown_key(cls: Any, parts: Sequence[str], done: tuple[str, ...] = ()) -> str | None:
    """Why the dotted key ``parts`` is no key of section ``cls`` (None when it is one)."""
    if cls is StrategyConfig:  # any hyper-parameter: the strategy registry names bad ones
        return None if len(parts) == 1 else f"unknown config key '{'.'.join([*done, *parts])}'"
    names = sorted(f.name for f in dataclasses.fields(cls))
    head, rest = parts[0], parts[1:]
    key = ".".join([*done, head])
    if head not in names:
        return (f"unknown config key '{key}' (valid keys here: {', '.join(names)})"
                + _did_you_mean_key(".".join(done) + "." if done else "", head, names))
    if not rest:
        return None
    tp = typing.get_type_hints(cls)[head]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None
        tp = next(a for a in typing.get_args(tp) if a is not _NONE)
    if tp is dict or typing.get_origin(tp) is dict:
        return None  # a free mapping (model.overrides, a source's options)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _unknown_key(tp, rest, (*done, head))
    return f"{key} has no sub-keys"


def apply_overrides(data: dict[str, Any], overrides: Sequence[str],
                    origin: str = "override") -> dict[str, Any]:
    """A copy of ``data`` with each ``KEY=VALUE`` set at its dotted key.

    ``VALUE`` is read as a YAML value (``1``, ``1e-3``, ``[S01, S02]``, ``dfwf``);
    sections are created as needed. A key that is no config key, or a malformed
    override, is a :class:`ConfigError` naming the override (``origin`` says what
    gave it: ``override``, ``--set``). Types and ranges are checked afterwards,
    exactly as for the file.
    """
    out = copy.deepcopy(data)
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{origin} {text!r}: expected KEY=VALUE (e.g. train.epochs=1)")
        parts = key.split(".")
        problem = _unknown_key(RunConfig, parts)
        if problem is not None:
            raise ConfigError(f"{origin} {text!r}: {problem}")
        try:
            value = parse_yaml(raw)
        except (yaml.YAMLError, ConfigError) as exc:
            first = " ".join(str(exc).split())
            raise ConfigError(f"{origin} {text!r}: not a YAML value ({first})") from None
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{origin} {text!r}: {'.'.join(parts[:i + 1])} is not a "
                                  "mapping in the config")
            node = child
        node[parts[-1]] = value
    return out


def _override_keys(overrides: Sequence[str]) -> list[tuple[str, str]]:
    return [(o.partition("=")[0].strip(), o) for o in overrides]


def override_at_fault(exc: ConfigError, overrides: Sequence[str]) -> str | None:
    """The override whose key (or string value) the message of ``exc`` names, if any."""
    message = str(exc)
    for key, text in _override_keys(overrides):
        value = text.partition("=")[2].strip()
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", message) or (
                len(value) > 1 and repr(value) in message):
            return text
    return None


def located_error(exc: ConfigError, path: str | Path, overrides: Sequence[str] = (),
                  origin: str = "override") -> ConfigError:
    """``exc`` saying where the bad value came from: the override whose key (or string
    value) it names, else the file ``path``."""
    text = override_at_fault(exc, overrides)
    if text is not None:
        return ConfigError(f"{origin} {text!r} (given with {path}): {exc}")
    return ConfigError(f"{path}: {exc}")


# --------------------------------------------------------------------------- files


#: The folder of the configs shipped with the package (``configs/`` in a checkout
#: is a link to it).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "configs"
#: What ``data.source`` says for the embedded demo corpus (not a path).
DEMO_SOURCE = "demo"


def default_config_path() -> Path:
    """The demo config shipped inside the package (``configs/demo.yaml``)."""
    return SHIPPED_DIR / "demo.yaml"


def shipped_configs() -> dict[str, Path]:
    """The configs shipped with the package, by name (``demo``, ``asvspoof2019_la``, ...)."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}


def config_file(path: str | Path) -> Path:
    """The config file ``path`` names: a file, or the name of a shipped config
    (``asvspoof2019_la``, ``demo.yaml``) when no such file exists here.
    :class:`ConfigError` naming the path, the shipped names and the closest one otherwise."""
    path = Path(path)
    if path.exists():
        return path
    shipped = shipped_configs()
    if len(path.parts) == 1 and path.suffix.lower() in ("", ".yaml", ".yml") \
            and path.stem in shipped:
        return shipped[path.stem]
    hint = did_you_mean_config(path)
    raise ConfigError(f"{path}: config file not found (shipped configs, usable by name: "
                      f"{', '.join(shipped)}){hint}")


def did_you_mean_config(path: Path) -> str:
    """``"; did you mean 'NAME'?"`` for a name close to a shipped config's, or ``""``."""
    best = suggestion(path.stem, shipped_configs())
    return f"; did you mean {best!r}?" if best is not None else ""


#: Config keys that hold paths (``data.sources[].path`` is handled beside them).
PATH_KEYS: tuple[tuple[str, str], ...] = (("data", "source"), ("data", "cache_dir"),
                                          ("data", "pretrained_eval"), ("model", "init"),
                                          ("metrics", "asv_scores"),
                                          ("train", "feature_cache_dir"))


def _absolute(value: Any, base: Path) -> Any:
    """``value`` as an absolute path when it is a relative path string (``~`` expanded)."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    return value if p.is_absolute() and str(p) == value else os.path.normpath(base / p)


def absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of the plain config ``data`` with every relative path made absolute against
    ``base``: ``data.source`` (unless ``demo``), ``data.cache_dir``,
    ``data.sources[].path``, ``data.pretrained_eval``, ``model.init``,
    ``metrics.asv_scores``, ``train.feature_cache_dir`` and ``model.overrides.checkpoint``.

    The rule of every config file: a relative path is relative to the folder of the
    file that holds it (as a manifest's paths are relative to the manifest). A run
    stores the absolute paths in its ``config.yaml``.
    """
    out = copy.deepcopy(data)
    for section, key in PATH_KEYS:
        node = out.get(section)
        if isinstance(node, dict) and key in node and not (
                (section, key) == ("data", "source") and node[key] == DEMO_SOURCE):
            node[key] = _absolute(node[key], base)
    sources = (out.get("data") or {}).get("sources") if isinstance(out.get("data"), dict) \
        else None
    if isinstance(sources, list):
        for src in sources:
            if isinstance(src, dict) and "path" in src:
                src["path"] = _absolute(src["path"], base)
    model = out.get("model")
    overrides = model.get("overrides") if isinstance(model, dict) else None
    if isinstance(overrides, dict) and "checkpoint" in overrides:
        overrides["checkpoint"] = _absolute(overrides["checkpoint"], base)
    return out


def with_absolute_paths(cfg: RunConfig, base: Path | None = None) -> RunConfig:
    """``cfg`` with its relative paths made absolute against ``base`` (default: the working
    folder), as a run stores them; ``cfg`` itself when it has none."""
    data = to_dict(cfg)
    fixed = absolute_paths(data, base or Path.cwd())
    return cfg if fixed == data else config_from_dict(fixed)


def load_config(path: str | Path | None, overrides: Sequence[str] = (), *,
                origin: str = "override", relative_to_file: bool = True) -> RunConfig:
    """Load and validate a YAML config; ``None`` gives the built-in demo config, and the
    name of a shipped config (``asvspoof2019_la``) that config.

    ``overrides`` (``"train.epochs=1"``, ...) are applied to the file's data before
    validation, so they are typed and checked exactly like the file's values; an error
    in one names it as given by ``origin`` (``override``, ``--set``).
    Relative paths of the file are made absolute against the file's folder (symbolic
    links followed), those of an override against the working folder
    (:func:`absolute_paths`); ``relative_to_file=False`` reads a stored config whose
    relative paths meant the working folder (runs written before that rule).
    Every way a file can fail — missing, a folder, binary, unreadable, empty, not a
    mapping, nested too deeply, a duplicate key, an anchor, a bad key or value — is a
    :class:`ConfigError` naming the file (or the override at fault).
    """
    if path is None:
        return load_config(default_config_path(), overrides, origin=origin)
    path = config_file(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file (give a YAML file such "
                          "as configs/demo.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config was expected)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if data is None:
        raise ConfigError(f"{path}: the config is empty; start from a copy of "
                          "configs/demo.yaml (or give no config to run the demo)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, "
                          f"strategy, seed), got {type(data).__name__}")
    if relative_to_file:
        data = absolute_paths(data, path.resolve().parent)
    data = apply_overrides(data, overrides, origin)
    if relative_to_file:
        data = absolute_paths(data, Path.cwd())  # only the overrides' paths are left
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise located_error(exc, path, overrides, origin) from None


# --------------------------------------------------------------------------- back to data


def to_dict(cfg: Any) -> Any:
    """Plain YAML-able structure of a config (tuples become lists)."""
    if isinstance(cfg, StrategyConfig):  # flat: name, then the hyper-parameters
        return {"name": cfg.name, **to_dict(cfg.hyperparameters)}
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper quoting what :class:`_Loader` reads as a number: a string such
    as ``1e5`` (a legal attack name) would otherwise come back as a float."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def to_yaml(cfg: RunConfig) -> str:
    """The config as YAML text (round-trips through :func:`config_from_dict`)."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False)


def with_overrides(cfg: RunConfig, **sections: Any) -> RunConfig:
    """A new config with some fields replaced, validated like a file.

    ``with_overrides(cfg, strategy={"name": "dfwf"}, seed=3)``.
    """
    data = to_dict(cfg)
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return config_from_dict(data)


def override_config(cfg: RunConfig, overrides: Sequence[str], origin: str = "override"
                    ) -> RunConfig:
    """``cfg`` with dotted ``KEY=VALUE`` overrides applied, validated like a file (relative
    paths of the overrides against the working folder); errors name the override."""
    if not overrides:
        return cfg
    data = absolute_paths(apply_overrides(to_dict(cfg), overrides, origin), Path.cwd())
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise located_error(exc, "the config", overrides, origin) from None


def config_digest(cfg: RunConfig | dict) -> str:
    """SHA-256 of a resolved config, or of its :func:`to_dict` form as stored (kept with
    every checkpoint and in ``run.json``, so a stored config can be checked for damage)."""
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def config_differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The keys (``train.lr``, ``data.attacks``...) whose values differ between two configs."""
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
