"""Typed run configuration, validated at the edge.

YAML files are parsed into frozen dataclasses; an unknown key, a wrong type or
an out-of-range value raises :class:`ConfigError` naming the key (e.g.
``train.epochs``). Configs are never mutated: overrides build a new object
with :func:`dataclasses.replace` or :func:`with_overrides`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cl_spoof.errors import ConfigError
from cl_spoof.infra.names import BadNameError, check_name

MAX_SEED = 2**32 - 1  # numpy's seed range; stage seeds (seed * 1000 + stage) stay in torch's
MAX_NUM_SAMPLES = 16_000 * 600  # 10 minutes per clip
MAX_BATCH = 65_536
MAX_WORKERS = 64
MAX_THREADS = 1024


@dataclass(frozen=True)
class SourceConfig:
    """One named source of ``data.sources``: a corpus root (any reader) or a manifest.

    Its ``train_split``/``test_split``/``calibration_split`` (default: the ``data.``
    ones) say which of its splits become the run's train/test/calibration rows;
    rows of its other splits are left out. ``max_train``/``max_test`` cap its
    utterances (bona fide and spoof together, seeded, label ratio kept); the
    calibration rows are capped by ``max_test`` too.
    """

    name: str = ""  # prefixes its utterance ids ("itw" -> "itw/0"); unique in data.sources
    path: str = ""  # corpus root or CSV manifest
    layout: str | None = None  # a reader name (see README); None: detect the layout
    options: dict[str, Any] = field(default_factory=dict)  # reader options (fractions, ...)
    train_split: str | None = None
    test_split: str | None = None
    calibration_split: str | None = None
    max_train: int | None = None
    max_test: int | None = None


@dataclass(frozen=True)
class DataConfig:
    """Which utterances, in which order of experiences, at which length."""

    source: str = "demo"  # "demo", an ASVspoof 2019 LA root, or a CSV manifest
    demo_seed: int = 0  # seed of the generated demo corpus (source: demo)
    attacks: tuple[str, ...] = ()  # experience order; empty = every training attack, sorted
    train_split: str = "train"
    test_split: str = "dev"
    # Attacks that exist only in the eval partition (ASVspoof A07-A19): their eval rows
    # (and the eval bona fide) are split speaker-disjointly into train/test parts.
    eval_only_attacks: tuple[str, ...] = ()
    eval_only_test_fraction: float = 0.5
    num_samples: int = 64_600  # fixed input length (samples at data.sample_rate)
    bonafide_sharing: str = "all"  # "all": every experience gets all bona fide; "disjoint"
    allow_missing: bool = False  # drop rows whose file is absent (partial download)
    cache_dir: str | None = None  # decoded-waveform cache (default: per-user cache)
    max_train_per_attack: int | None = None  # cap spoof training clips per attack
    max_test_per_attack: int | None = None  # cap spoof test clips per attack
    max_bonafide_test: int | None = None  # cap bona fide test clips
    # Several named sources (corpora, manifests) instead of ``source``; see SourceConfig.
    sources: tuple[SourceConfig, ...] = ()
    # "attack": one experience per attack (of every source); "source": one per source.
    experience_by: str = "attack"
    # Split scored after every stage to fit the score-to-LLR calibration of actDCF/Cllr
    # (never trained on, never in the EER matrix); None: no calibration.
    calibration_split: str | None = None
    # Rate every file is decoded and resampled to (the cache key includes it); 24000
    # keeps the 8-12 kHz band where neural-vocoder artefacts live.
    sample_rate: int = 16_000
    # Input level, set on each decoded utterance before cropping, in training and
    # evaluation alike: "rms" (to level_db, default -26 dBFS), "peak" (to level_db,
    # default 0 dBFS) or "none" (as decoded).
    level: str = "rms"
    level_db: float | None = None


@dataclass(frozen=True)
class SelfDistillationConfig:
    """Self-distillation (``model.self_distillation``): the deepest exit teaches exits
    added after the shallow segments; added to any strategy's loss (README, "Detectors").

    Loss added: ``hard_weight * sum_i CE(z_i, y) + soft_weight * sum_i T^2 KL(p_deep/T ||
    p_i/T) + feature_weight * sum_i mean((f_i - f_deep)^2)`` over the shallow exits i.
    """

    enabled: bool = False
    segments: tuple[str, ...] = ()  # layers whose outputs feed exits; empty = the preset's
    hard_weight: float = 0.7  # cross-entropy at every shallow exit (BYOT's 1 - alpha)
    soft_weight: float = 0.3  # KL from the deepest exit (BYOT's alpha)
    feature_weight: float = 0.1  # squared distance to the deepest embedding (our choice)
    temperature: float = 3.0  # softmax temperature of the soft loss (BYOT's T)


@dataclass(frozen=True)
class ModelSpec:
    """The detector: a preset name, optional field overrides, self-distillation."""

    preset: str = "small"
    overrides: dict[str, Any] = field(default_factory=dict)
    self_distillation: SelfDistillationConfig = field(default_factory=SelfDistillationConfig)


#: RawBoost algorithm ids (Tak et al., ICASSP 2022): 0 none, 1 LnL convolutive noise,
#: 2 ISD impulsive noise, 3 SSI coloured additive noise, 4 = 1->2->3, 5 = 1->2,
#: 6 = 1->3, 7 = 2->3, 8 = 1 and 2 in parallel.
RAWBOOST_ALGORITHMS: tuple[int, ...] = tuple(range(9))
#: Learning-rate schedules of ``train.lr_schedule``.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "exponential")
#: Input level modes of ``data.level``.
LEVEL_MODES: tuple[str, ...] = ("none", "rms", "peak")


@dataclass(frozen=True)
class AugmentConfig:
    """Waveform augmentation of training clips, drawn per clip from the run's seed.

    Applied after the random crop, in this order: RawBoost algorithm ``rawboost`` with
    probability ``p_rawboost``; band limitation (resampling down to one of
    ``codec_rates`` and back: a codec-bandwidth stand-in) with ``p_codec``; a gain
    drawn from ``gain_db`` (dB, the clip never exceeds full scale) with ``p_gain``.
    The remaining keys are RawBoost's published ranges (Tak et al. 2022); ``max_f``
    None means half the sample rate. Evaluation clips are never augmented.
    """

    rawboost: int = 5  # 5 = LnL convolutive -> ISD impulsive noise (RawBoost's LA setting)
    p_rawboost: float = 1.0
    p_codec: float = 0.0
    codec_rates: tuple[int, ...] = (8_000, 11_025, 12_000, 16_000, 22_050)
    p_gain: float = 0.0
    gain_db: tuple[float, ...] = (-12.0, 12.0)
    # RawBoost's random notch-filter generator
    n_bands: int = 5
    min_f: float = 20.0
    max_f: float | None = None
    min_bw: float = 100.0
    max_bw: float = 1000.0
    min_coeff: int = 10
    max_coeff: int = 100
    # (1) LnL: gain range of the linear term; terms j >= 2 use [min_g - max_bias, max_g - min_bias]
    lnl_n_f: int = 5
    lnl_min_g: float = 0.0
    lnl_max_g: float = 0.0
    lnl_min_bias: float = 5.0
    lnl_max_bias: float = 20.0
    # (2) ISD: at most isd_p % of the samples, gain factor isd_g_sd
    isd_p: float = 10.0
    isd_g_sd: float = 2.0
    # (3) SSI: signal-to-noise ratio range (dB)
    ssi_snr_min: float = 10.0
    ssi_snr_max: float = 40.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every strategy."""

    epochs: int = 4
    first_epochs: int | None = None  # epochs of the first experience (default: epochs)
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    class_weighted_loss: bool = True
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    workers: int = 0  # DataLoader worker processes
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: str = "off"  # "bf16": bfloat16 autocast for forward passes (GPU speed-up)
    compile: bool = False  # torch.compile the conv front end (worth it for long GPU runs)
    compile_backend: str = "inductor"  # torch.compile backend ("eager" for debugging)
    # Under torchrun: seconds a rank waits in a collective before the job fails
    # (a rank that hangs; torchrun itself stops the job when a rank crashes).
    dist_timeout: float = 600.0
    # Freeze-and-learn: fnmatch patterns of parameter/module names that keep learning
    # after the first experience (the rest is frozen); empty = everything learns.
    trainable: tuple[str, ...] = ()
    # Waveform augmentation of training clips; null: none.
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    # Learning rate within each experience, per optimiser step: "constant";
    # "cosine" (linear warm-up from lr/10 over warmup_epochs, then half-cosine decay
    # to lr * lr_final at the end of the experience); "exponential" (warm-up, then
    # lr * lr_gamma ** epochs, as TSSDNet's 0.95 per epoch).
    lr_schedule: str = "cosine"
    warmup_epochs: float = 1.0
    lr_final: float = 0.01
    lr_gamma: float = 0.95


def _default_hyperparameters() -> dict[str, Any]:
    from cl_spoof.strategies.registry import hyperparameters

    return {name: hp.default for name, hp in hyperparameters().items()}


@dataclass(frozen=True)
class StrategyConfig:
    """A continual-learning strategy and its hyper-parameters.

    The hyper-parameters are declared with each strategy in
    :mod:`cl_spoof.strategies.registry`. In YAML they sit flat next to ``name``
    (``strategy: {name: dfwf, kd_weight: 2.0}``) and read as attributes
    (``cfg.strategy.kd_weight``). Every declared key is present with its default,
    whatever the name, so one config serves a comparison of several strategies.
    ``hyperparameters`` must not be modified (build a new config instead).
    """

    name: str = "naive"
    hyperparameters: dict[str, Any] = field(default_factory=_default_hyperparameters)

    def __getattr__(self, key: str) -> Any:
        """``cfg.strategy.<hyper-parameter>``."""
        if key.startswith("_") or key == "hyperparameters":
            raise AttributeError(key)
        try:
            return self.hyperparameters[key]
        except KeyError:
            raise AttributeError(f"StrategyConfig has no hyper-parameter {key!r}") from None


#: Official metrics ``metrics.official`` may name (pooled EER and average forgetting
#: are always computed).
OFFICIAL_METRICS: tuple[str, ...] = ("min_dcf", "act_dcf", "cllr", "min_tdcf")
#: Score-file formats of ``metrics.score_format``.
SCORE_FORMATS: tuple[str, ...] = ("asvspoof2019", "asvspoof5")


@dataclass(frozen=True)
class MetricsConfig:
    """Official metrics computed after every stage, and the score-file format."""

    # Metrics that must be computed (an error before training when an input is
    # missing); empty: every one whose inputs the config gives.
    official: tuple[str, ...] = ()
    # The organisers' ASVspoof 2019 LA ASV score file of the test partition
    # (ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt).
    asv_scores: str | None = None
    # With several data.sources: the ASVspoof 2019 LA source whose scores min t-DCF uses.
    tdcf_source: str | None = None
    score_format: str = "asvspoof2019"  # or "asvspoof5" (Track 1 submission format)
    # Sub-corpus of each utterance for the "matched" EER (each attack's spoofs against
    # only the bona fide of its own sub-corpus): a column of the utterance table
    # (e.g. "source" with data.sources) or "folder" (the first folder of each file
    # below the folder all files share). None: no matched EER.
    matched_by: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; written back as the run's ``config.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    seed: int = 0
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


_NONE = type(None)


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Validate/convert ``value`` against the annotation ``tp``; error names ``key``."""
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
                return _check_value(key, value, a)
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
        return tuple(_check_value(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
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


def _build_strategy(data: dict[str, Any], prefix: str) -> StrategyConfig:
    """``strategy:`` — ``name`` plus any hyper-parameter a registered strategy declares."""
    from cl_spoof.strategies.registry import hyperparameters

    declared = hyperparameters()
    unknown = [k for k in data if k != "name" and k not in declared]
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (valid keys here: "
                          f"{', '.join(['name', *sorted(declared)])})")
    values = {k: hp.default for k, hp in declared.items()}
    for key, value in data.items():
        if key != "name":
            values[key] = _check_value(f"{prefix}{key}", value, declared[key].type)
    name = _check_value(f"{prefix}name", data.get("name", "naive"), str)
    return StrategyConfig(name=name, hyperparameters=values)


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
        name = f"{prefix}{unknown[0]}"
        raise ConfigError(
            f"unknown config key '{name}' (valid keys here: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = f"{prefix}{name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{key}.")
        else:
            kwargs[name] = _check_value(key, value, tp)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any] | None) -> RunConfig:
    """Validate a plain mapping (parsed YAML) into a :class:`RunConfig`."""
    cfg = _build(RunConfig, data or {}, "")
    validate(cfg)
    return cfg


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a number as YAML 1.2 does (PyYAML follows
    YAML 1.1, where a float needs a dot: ``1e-3`` would be the string '1e-3')."""


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


def parse_yaml(text: str) -> Any:
    """YAML text as plain data (safe loader; ``1e-3`` is a number)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_config(path: str | Path | None) -> RunConfig:
    """Load and validate a YAML config; ``None`` gives the built-in demo config.

    Every way a file can fail — missing, a folder, binary, unreadable, empty, not a
    mapping, a bad key or value — is a :class:`ConfigError` naming the file.
    """
    if path is None:
        return load_config(default_config_path())
    path = Path(path)
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
    if data is None:
        raise ConfigError(f"{path}: the config is empty; start from a copy of "
                          "configs/demo.yaml (or give no config to run the demo)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, "
                          f"strategy, seed), got {type(data).__name__}")
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_config_path() -> Path:
    """The demo config shipped inside the package (a copy of ``configs/demo.yaml``)."""
    return Path(__file__).parent / "configs" / "demo.yaml"


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


def to_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML text (round-trips through :func:`config_from_dict`)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


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


def validate(cfg: RunConfig) -> None:
    """Range checks that types alone cannot express (strategy ones: from the registry)."""
    from cl_spoof.strategies.registry import check_strategy_name, hyperparameters

    d, t = cfg.data, cfg.train
    checks: list[tuple[bool, str]] = [
        (0 <= cfg.seed <= MAX_SEED, f"seed must be between 0 and {MAX_SEED}, got {cfg.seed}"),
        (0 <= d.demo_seed <= MAX_SEED,
         f"data.demo_seed must be between 0 and {MAX_SEED}, got {d.demo_seed}"),
        (d.num_samples >= 1600, "data.num_samples must be at least 1600 (0.1 s)"),
        (d.num_samples <= MAX_NUM_SAMPLES,
         f"data.num_samples must be at most {MAX_NUM_SAMPLES} (10 minutes at 16 kHz), "
         f"got {d.num_samples}"),
        *[(cap is None or cap >= 1,
           f"data.{name} must be at least 1 (or left out for no cap), got {cap}")
          for name, cap in (("max_train_per_attack", d.max_train_per_attack),
                            ("max_test_per_attack", d.max_test_per_attack),
                            ("max_bonafide_test", d.max_bonafide_test))],
        (d.bonafide_sharing in ("all", "disjoint"),
         f"data.bonafide_sharing must be 'all' or 'disjoint', got {d.bonafide_sharing!r}"),
        (0.0 < d.eval_only_test_fraction < 1.0,
         "data.eval_only_test_fraction must be between 0 and 1"),
        (t.epochs >= 1, "train.epochs must be at least 1"),
        (t.first_epochs is None or t.first_epochs >= 1, "train.first_epochs must be at least 1"),
        (1 <= t.batch_size <= MAX_BATCH,
         f"train.batch_size must be between 1 and {MAX_BATCH}, got {t.batch_size}"),
        (1 <= t.eval_batch_size <= MAX_BATCH,
         f"train.eval_batch_size must be between 1 and {MAX_BATCH}, got {t.eval_batch_size}"),
        (t.lr > 0, "train.lr must be positive"),
        (t.weight_decay >= 0, "train.weight_decay must not be negative"),
        (0 <= t.threads <= MAX_THREADS,
         f"train.threads must be between 0 and {MAX_THREADS}, got {t.threads}"),
        (0 <= t.workers <= MAX_WORKERS,
         f"train.workers must be between 0 and {MAX_WORKERS} (DataLoader processes), "
         f"got {t.workers}"),
        (t.dist_timeout > 0, "train.dist_timeout must be positive (seconds)"),
        (t.amp in ("off", "bf16"), f"train.amp must be 'off' or 'bf16', got {t.amp!r}"),
        (8_000 <= d.sample_rate <= 192_000,
         f"data.sample_rate must be between 8000 and 192000 Hz, got {d.sample_rate}"),
        (d.level in LEVEL_MODES,
         f"data.level must be one of {', '.join(LEVEL_MODES)}, got {d.level!r}"),
        (t.lr_schedule in LR_SCHEDULES,
         f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {t.lr_schedule!r}"),
        (t.warmup_epochs >= 0, "train.warmup_epochs must not be negative"),
        (0 <= t.lr_final <= 1, "train.lr_final must be between 0 and 1 (a fraction of lr)"),
        (0 < t.lr_gamma <= 1, "train.lr_gamma must be in (0, 1]"),
    ]
    sd = cfg.model.self_distillation
    checks += [(getattr(sd, k) >= 0, f"model.self_distillation.{k} must not be negative")
               for k in ("hard_weight", "soft_weight", "feature_weight")]
    checks.append((sd.temperature > 0, "model.self_distillation.temperature must be positive"))
    checks.append((not sd.enabled or sd.hard_weight + sd.soft_weight + sd.feature_weight > 0,
                   "model.self_distillation: hard_weight, soft_weight and feature_weight are "
                   "all 0; set one, or enabled: false"))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if t.augment is not None:
        _validate_augment(t.augment)
    if "sample_rate" in cfg.model.overrides:
        raise ConfigError("model.overrides.sample_rate: the model's input rate is "
                          "data.sample_rate; set it there")
    for key, names in (("data.attacks", d.attacks), ("data.eval_only_attacks",
                                                       d.eval_only_attacks)):
        for name in names:
            try:
                check_name(name, f"{key}: attack name")
            except BadNameError as exc:
                raise ConfigError(str(exc)) from None
    check_strategy_name(cfg.strategy.name)
    for name, hp in hyperparameters().items():
        hp.check(cfg.strategy.hyperparameters[name])
    _validate_sources(d)
    _validate_metrics(cfg)


def _validate_augment(a: AugmentConfig) -> None:
    """``train.augment``: ranges of every key; errors name it."""
    k = "train.augment."
    checks: list[tuple[bool, str]] = [
        (a.rawboost in RAWBOOST_ALGORITHMS, f"{k}rawboost must be a RawBoost algorithm id 0-8 "
                                            f"(5 = LnL then ISD), got {a.rawboost}"),
        (all(0 <= p <= 1 for p in (a.p_rawboost, a.p_codec, a.p_gain)),
         f"{k}p_rawboost, p_codec and p_gain must be probabilities between 0 and 1"),
        (bool(a.codec_rates) and all(r >= 1000 for r in a.codec_rates),
         f"{k}codec_rates must list sample rates of at least 1000 Hz"),
        (len(a.gain_db) == 2 and a.gain_db[0] <= a.gain_db[1],
         f"{k}gain_db must be [low, high] in dB with low <= high, got {list(a.gain_db)}"),
        (a.n_bands >= 1, f"{k}n_bands must be at least 1"),
        (a.min_f > 0 and (a.max_f is None or a.min_f < a.max_f),
         f"{k}min_f must be positive and below max_f"),
        (0 < a.min_bw <= a.max_bw, f"{k}min_bw must be positive and at most max_bw"),
        (3 <= a.min_coeff <= a.max_coeff <= 1000,
         f"{k}min_coeff and max_coeff must satisfy 3 <= min_coeff <= max_coeff <= 1000"),
        (a.lnl_n_f >= 1, f"{k}lnl_n_f must be at least 1"),
        (a.lnl_min_g <= a.lnl_max_g, f"{k}lnl_min_g must be at most lnl_max_g"),
        (0 <= a.isd_p <= 100, f"{k}isd_p must be a percentage between 0 and 100"),
        (a.isd_g_sd >= 0, f"{k}isd_g_sd must not be negative"),
        (a.ssi_snr_min <= a.ssi_snr_max, f"{k}ssi_snr_min must be at most ssi_snr_max"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def source_splits(d: DataConfig, src: SourceConfig) -> dict[str, str]:
    """The source's split name -> the run's split it becomes (train, test, calibration)."""
    out = {src.train_split or d.train_split: d.train_split,
           src.test_split or d.test_split: d.test_split}
    if d.calibration_split is not None:
        out[src.calibration_split or d.calibration_split] = d.calibration_split
    return out


def _validate_sources(d: DataConfig) -> None:
    """``data.sources`` / ``experience_by`` / ``calibration_split``: errors name the key."""
    if d.experience_by not in ("attack", "source"):
        raise ConfigError(f"data.experience_by must be 'attack' or 'source', got "
                          f"{d.experience_by!r}")
    roles = [d.train_split, d.test_split] + (
        [d.calibration_split] if d.calibration_split is not None else [])
    if len(set(roles)) != len(roles):
        raise ConfigError("data.train_split, data.test_split and data.calibration_split must "
                          f"be different splits, got {', '.join(roles)}")
    if not d.sources:
        if d.experience_by == "source":
            raise ConfigError("data.experience_by: source needs data.sources (a list of named "
                              "sources), not data.source")
        return
    if d.source != "demo":
        raise ConfigError("give data.source or data.sources, not both")
    if d.eval_only_attacks:
        raise ConfigError("data.eval_only_attacks works with data.source only; with "
                          "data.sources set each source's splits (train_split, test_split)")
    if d.experience_by == "source" and d.attacks:
        raise ConfigError("data.attacks: with experience_by: source the experiences are the "
                          "data.sources in their order; leave data.attacks empty")
    seen: set[str] = set()
    for i, src in enumerate(d.sources):
        key = f"data.sources[{i}]"
        try:  # it prefixes utterance ids and attack names (columns, file names)
            check_name(src.name, "source name")
        except BadNameError as exc:
            raise ConfigError(f"{key}.name: {exc}") from None
        if src.name in seen:
            raise ConfigError(f"{key}.name: source name {src.name!r} is used twice; names "
                              "prefix utterance ids and must be unique")
        seen.add(src.name)
        if not src.path:
            raise ConfigError(f"{key}.path: the corpus root or manifest of source {src.name!r}")
        own = [src.train_split or d.train_split, src.test_split or d.test_split]
        if d.calibration_split is not None:
            own.append(src.calibration_split or d.calibration_split)
        elif src.calibration_split is not None:
            raise ConfigError(f"{key}.calibration_split needs data.calibration_split (the "
                              "run's calibration split)")
        if len(set(own)) != len(own):
            raise ConfigError(f"{key}: its train, test and calibration splits must differ, "
                              f"got {', '.join(own)}")
        for cap in ("max_train", "max_test"):
            value = getattr(src, cap)
            if value is not None and value < 2:
                raise ConfigError(f"{key}.{cap} must be at least 2 (a bona fide and a spoof "
                                  "utterance)")


def _validate_metrics(cfg: RunConfig) -> None:
    """``metrics:``: known names and formats; an asked-for metric has its inputs."""
    m = cfg.metrics
    unknown = [n for n in m.official if n not in OFFICIAL_METRICS]
    if unknown:
        raise ConfigError(f"metrics.official: unknown metric(s) {', '.join(unknown)} (known: "
                          f"{', '.join(OFFICIAL_METRICS)}; pooled EER and average forgetting "
                          "are always computed)")
    if m.score_format not in SCORE_FORMATS:
        raise ConfigError(f"metrics.score_format must be one of {', '.join(SCORE_FORMATS)}, "
                          f"got {m.score_format!r}")
    for name in ("act_dcf", "cllr"):
        if name in m.official and cfg.data.calibration_split is None:
            raise ConfigError(f"metrics.official asks for {name}, which needs calibrated "
                              "log-likelihood ratios: set data.calibration_split (a split "
                              "scored after every stage to fit the calibration on)")
    if "min_tdcf" in m.official and m.asv_scores is None:
        raise ConfigError("metrics.official asks for min_tdcf, which needs the organisers' ASV "
                          "score file of the test partition: set metrics.asv_scores (e.g. "
                          "LA/ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.dev.gi.trl."
                          "scores.txt)")
    names = [s.name for s in cfg.data.sources]
    if m.tdcf_source is not None:
        if m.asv_scores is None:
            raise ConfigError("metrics.tdcf_source is set but metrics.asv_scores is not")
        if m.tdcf_source not in names:
            raise ConfigError(f"metrics.tdcf_source: {m.tdcf_source!r} is not a name in "
                              f"data.sources ({', '.join(names) or 'none'})")
    elif m.asv_scores is not None and len(names) > 1:
        raise ConfigError("metrics.tdcf_source: name the ASVspoof 2019 LA source of "
                          f"data.sources ({', '.join(names)}) whose scores min t-DCF uses")


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
