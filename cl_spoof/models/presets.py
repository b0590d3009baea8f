"""Every detector preset by name (``model.preset``), collected from the family modules.

A preset is a backbone family's constructor plus a frozen config of that family;
``model.overrides`` replace config fields. Every detector takes a waveform
``(B, L)`` and returns plain logits ``(B, 2)`` (index 1 = bona fide), routes its
utterance embedding through an ``embedding`` submodule (a hook point for DFWF's
alignment), and has ``min_length()`` and ``compile_frontend(backend)``: it is a
:class:`~cl_spoof.models.base.Detector`.

**Adding a backbone family (or a preset) touches one module.** A family is a module
of this package, ``cl_spoof/models/<family>.py``, holding its detector class, its
frozen config dataclass and a module-level tuple of its presets::

    from cl_spoof.models.base import Detector, Preset

    PRESETS: tuple[Preset, ...] = (
        Preset("aasist", "AASIST: ...", AASISTConfig(), AASIST, order=120),
        Preset("tiny_aasist", "AASIST for unit tests", AASISTConfig(...), AASIST,
               order=130),
    )

:func:`collect_presets` finds the families by looking through the modules of this
package (``pkgutil``, in name order) for a top-level ``PRESETS`` assignment; only those
modules are imported, so importing the registry stays as light as the families
themselves (helpers such as ``classical.py`` and its scikit-learn are not loaded).
:data:`PRESETS` lists them by ``order`` (today's presets use 10 ... 110; the default,
1000, puts a new one last), then module name, then place in the module's tuple. Two
presets of one name are an error at import.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import pkgutil
import sys
from types import ModuleType
from typing import Any

from torch import nn

from cl_spoof.config import ModelSpec
from cl_spoof.errors import ConfigError, did_you_mean
from cl_spoof.infra.files import format_size
from cl_spoof.models.base import Detector, Preset, module_values, on_meta_device
from cl_spoof.models.exits import attach_exits

__all__ = ["MAX_MODEL_VALUES", "PRESETS", "Preset", "build_detector", "build_model",
           "check_size", "collect_presets", "count_parameters", "count_values",
           "family_modules"]


def _declares_presets(source: str) -> bool:
    """Whether module source assigns ``PRESETS`` at its top level."""
    for node in ast.parse(source).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "PRESETS" for t in targets):
            return True
    return False


def family_modules(package: ModuleType) -> list[ModuleType]:
    """The modules of ``package`` (every folder of its ``__path__``) that declare
    ``PRESETS``, imported, in module-name order (this registry itself excluded)."""
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        name = f"{package.__name__}.{info.name}"
        if info.ispkg or info.name.startswith("_") or name == __name__:
            continue
        spec = info.module_finder.find_spec(name, None)
        loader = spec.loader if spec is not None else None
        get_source = getattr(loader, "get_source", None)
        source = get_source(name) if get_source is not None else None
        if source is None or ("PRESETS" in source and _declares_presets(source)):
            module = importlib.import_module(name)
            if hasattr(module, "PRESETS"):
                found.append(module)
    return found


def collect_presets(package: ModuleType | None = None) -> dict[str, Preset]:
    """Every :class:`Preset` the family modules of ``package`` (default: this one)
    declare, by name, in listing order (see the module docstring)."""
    package = package if package is not None else sys.modules[__package__]
    ranked: list[tuple[int, str, int, Preset]] = []
    owner: dict[str, str] = {}
    for module in family_modules(package):
        for index, preset in enumerate(module.PRESETS):
            if not isinstance(preset, Preset):
                raise TypeError(f"{module.__name__}.PRESETS holds {preset!r}, not a Preset")
            if preset.name in owner:
                raise ValueError(f"model preset {preset.name!r} is declared twice: in "
                                 f"{owner[preset.name]} and {module.__name__}")
            owner[preset.name] = module.__name__
            ranked.append((preset.order, module.__name__, index, preset))
    return {p.name: p for *_, p in sorted(ranked, key=lambda r: r[:3])}


PRESETS: dict[str, Preset] = collect_presets()


def build_model(preset: str, sample_rate: int | None = None, **overrides: Any) -> Detector:
    """Build preset ``preset`` with config fields replaced by ``overrides``.

    ``sample_rate`` (``data.sample_rate``) is the rate of the waveforms the model will
    see; it sets the family config's ``sample_rate`` field where there is one (front
    ends defined in milliseconds or Hz need it).
    Raises :class:`~cl_spoof.errors.ConfigError` naming ``model.preset`` or the
    override for an unknown preset or field.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r} (model.preset); valid presets: "
                          f"{', '.join(PRESETS)}" + did_you_mean(preset, PRESETS))
    spec = PRESETS[preset]
    config = spec.config
    names = {f.name for f in dataclasses.fields(config)}
    if overrides:
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown} in model.overrides for preset "
                              f"{preset!r}; valid options: {', '.join(sorted(names))}")
    given = dict(overrides)
    if sample_rate is not None and "sample_rate" in names:
        overrides = {**overrides, "sample_rate": int(sample_rate)}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    if given:  # a preset as shipped fits; sizes the user changed are counted first
        check_size(preset, spec, overrides, given)
    return spec.build(config)


#: Most values (parameters and buffers) a detector may hold: 4 bytes each in float32,
#: 16 GB before gradients and optimizer state. A machine with less memory allows less.
MAX_MODEL_VALUES = 4_000_000_000


def _memory_limit() -> tuple[int, str]:
    """The most values a model may hold here, and why."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    if 0 < memory < MAX_MODEL_VALUES * 4:
        return memory // 4, f"the {format_size(memory)} of memory of this machine"
    return MAX_MODEL_VALUES, f"at most {MAX_MODEL_VALUES:,} values in any case"


def _meta_limitation(exc: Exception) -> bool:
    """Whether building on the meta device failed because a constructor needs a tensor's
    value (``.item()``, a data-dependent branch), not because of the sizes."""
    return isinstance(exc, NotImplementedError) or "meta" in str(exc).lower()


def count_values(spec: Preset, overrides: dict[str, Any]) -> int:
    """Values (parameters and buffers) the preset ``spec`` with config fields ``overrides``
    would hold, counted without allocating them (:attr:`Preset.size`, else a build on the
    meta device)."""
    config = dataclasses.replace(spec.config, **overrides)
    if spec.size is not None:
        return spec.size(config)
    with on_meta_device():
        return module_values(spec.build(config))


def check_size(preset: str, spec: Preset, overrides: dict[str, Any],
               given: dict[str, Any]) -> None:
    """Refuse, before any weight is allocated, a model (``overrides``: every field set,
    ``given``: those the user gave in ``model.overrides``) that would not fit in memory,
    or that cannot be built at all, naming the keys that make it so."""
    limit, why = _memory_limit()

    def problem(changes: dict[str, Any], alone: bool = False) -> str | None:
        try:
            values = count_values(spec, changes)
        except ConfigError:
            if alone:  # one key alone may be inconsistent; the whole was checked
                return None
            raise
        except Exception as exc:  # noqa: BLE001 - absurd sizes fail in many ways
            if _meta_limitation(exc):
                return None  # cannot be counted without values: built as it is
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return f"cannot build the {preset!r} model ({type(exc).__name__}: {first})"
        if values > limit:
            return (f"the model would hold {values:,} parameters and buffer values "
                    f"({format_size(4 * values)} in float32), more than fit ({why}); choose "
                    "smaller sizes")
        return None

    whole = problem(overrides)
    if whole is None:
        return
    fixed = {k: v for k, v in overrides.items() if k not in given}
    alone = [k for k in given if problem({**fixed, k: given[k]}, alone=True) is not None]
    keys = alone or list(given)
    raise ConfigError(f"{', '.join(f'model.overrides.{k}' for k in keys)}: {whole}")


def build_detector(spec: ModelSpec, sample_rate: int | None = None) -> Detector:
    """The detector of a config's ``model`` section for input at ``sample_rate``
    (``data.sample_rate``): the preset with its overrides, plus self-distillation exits
    when ``model.self_distillation.enabled`` (errors name the key)."""
    model = build_model(spec.preset, sample_rate, **spec.overrides)
    sd = spec.self_distillation
    if sd.enabled:
        attach_exits(model, sd.segments, "model.self_distillation.segments")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
