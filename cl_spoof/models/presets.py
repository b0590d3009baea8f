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
import pkgutil
import sys
from types import ModuleType
from typing import Any

from torch import nn

from cl_spoof.config import ModelSpec
from cl_spoof.errors import ConfigError, did_you_mean
from cl_spoof.models.base import Detector, Preset
from cl_spoof.models.exits import attach_exits

__all__ = ["PRESETS", "Preset", "build_detector", "build_model", "collect_presets",
           "count_parameters", "family_modules"]


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
    if sample_rate is not None and "sample_rate" in names:
        overrides = {**overrides, "sample_rate": int(sample_rate)}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    return spec.build(config)


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
