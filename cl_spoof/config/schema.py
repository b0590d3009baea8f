"""The sections of a run configuration: frozen dataclasses, each check beside its field.

A numeric key declares its range on its own line (:func:`bounded`: a lower and a
finite upper limit), a key with a fixed set of values declares them (:func:`choice`);
checks that involve several keys are a short ``check`` method of their section.
Every key carries its documentation as field metadata (``doc=``; :func:`field_doc`),
which ``cl-spoof config defaults`` prints beside its default.
:func:`validate` runs them all; every message names the dotted key (``train.epochs``).
Reading YAML is :mod:`cl_spoof.config.loader`'s job; the strategy and metrics
sections are checked further by their registries (``resolve``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from cl_spoof.errors import ConfigError
from cl_spoof.infra.names import BadNameError, check_name
from cl_spoof.labels import SAMPLE_RATE

MAX_SEED = 2**32 - 1  # numpy's seed range; stage seeds (seed * 1000 + stage) stay in torch's
MAX_NUM_SAMPLES = SAMPLE_RATE * 600  # 10 minutes per clip
MAX_BATCH = 65_536
MAX_WORKERS = 64
MAX_THREADS = 1024
MAX_EPOCHS = 100_000
MAX_ROWS = 10**9  # a cap on utterances: far above any corpus
MAX_RATE = 192_000  # Hz
MAX_TIMEOUT = 7 * 24 * 3600  # a week, in seconds

#: RawBoost algorithm ids (Tak et al., ICASSP 2022): 0 none, 1 LnL convolutive noise,
#: 2 ISD impulsive noise, 3 SSI coloured additive noise, 4 = 1->2->3, 5 = 1->2,
#: 6 = 1->3, 7 = 2->3, 8 = 1 and 2 in parallel.
RAWBOOST_ALGORITHMS: tuple[int, ...] = tuple(range(9))
#: Learning-rate schedules of ``train.lr_schedule``.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "exponential")
#: Input level modes of ``data.level``.
LEVEL_MODES: tuple[str, ...] = ("none", "rms", "peak")
#: Score-file formats of ``metrics.score_format``.
SCORE_FORMATS: tuple[str, ...] = ("asvspoof2019", "asvspoof5")
#: What one experience is (``data.experience_by``).
EXPERIENCE_UNITS: tuple[str, ...] = ("attack", "source", "family")
#: Extra training loggers of ``train.loggers``.
TRAIN_LOGGERS: tuple[str, ...] = ("tensorboard",)


# --------------------------------------------------------------------------- field checks


def _num(x: float) -> str:
    """A number as written in a message: ``100000``, ``0.5``, ``-100``, ``1e+23``."""
    if abs(x) >= 1e15:
        return f"{x:g}"
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric key (of each element, for a list), and how a message says it.

    ``low``/``high`` complete "<key> ..." when the value is below/above the range;
    by default "must not be negative", "must be positive", "must be at least <lo>",
    "must be at most <hi>".
    """

    lo: float
    hi: float
    above: bool = False  # lo itself is excluded
    below: bool = False  # hi itself is excluded
    low: str = ""
    high: str = ""

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` (None when it is in range)."""
        if value < self.lo or (self.above and value == self.lo):
            if self.low:
                return self.low
            if self.lo == 0:
                return "must be positive" if self.above else "must not be negative"
            return f"must be {'above' if self.above else 'at least'} {_num(self.lo)}"
        if value > self.hi or (self.below and value == self.hi):
            return self.high or f"must be {'below' if self.below else 'at most'} {_num(self.hi)}"
        return None


@dataclass(frozen=True)
class Choice:
    """The values a string key may take."""

    values: tuple[str, ...]

    def problem(self, value: str) -> str | None:
        """What is wrong with ``value`` (None when it is one of the values)."""
        return None if value in self.values else f"must be one of {', '.join(self.values)}"


def bounded(default: Any, lo: float, hi: float, *, above: bool = False, below: bool = False,
            say: str = "", low: str = "", high: str = "", doc: str = "") -> Any:
    """A dataclass field whose value (or each element of it) lies in ``[lo, hi]``.

    ``above``/``below`` exclude ``lo``/``hi``; ``say`` is the whole message for both
    ends ("must be between 0 and 1"), ``low``/``high`` the message of one end; ``doc``
    documents the key.
    """
    bounds = Bounds(lo, hi, above, below, low or say, high or say)
    return field(default=default, metadata={"check": bounds, "doc": doc})


def choice(default: str, values: tuple[str, ...], doc: str = "") -> Any:
    """A dataclass field whose value is one of ``values`` (``doc`` documents the key)."""
    return field(default=default, metadata={"check": Choice(values), "doc": doc})


def documented(default: Any = None, doc: str = "", *, factory: Any = None) -> Any:
    """A dataclass field with its documentation (``factory``: a default factory instead)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def field_doc(f: dataclasses.Field) -> str:
    """The documentation of a config key (empty when it has none)."""
    return str(f.metadata.get("doc", ""))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return str(list(value))
    if isinstance(value, str):
        return repr(value)
    return _num(value) if isinstance(value, int | float) else str(value)


def check_field(key: str, value: Any, f: dataclasses.Field) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``value`` breaks ``f``'s declared check."""
    rule = f.metadata.get("check")
    if rule is None or value is None:
        return
    for item in value if isinstance(value, tuple) else (value,):
        problem = rule.problem(item)
        if problem is not None:
            raise ConfigError(f"{key} {problem}, got {_shown(value)}")


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SourceConfig:
    """One named source of ``data.sources``: a corpus root (any reader) or a manifest.

    Its ``train_split``/``test_split``/``calibration_split`` (default: the ``data.``
    ones) say which of its splits become the run's train/test/calibration rows;
    rows of its other splits are left out. ``max_train``/``max_test`` cap its
    utterances (bona fide and spoof together, seeded, label ratio kept); the
    calibration rows are capped by ``max_test`` too.
    """

    name: str = documented("", "prefixes its utterance ids (\"itw\" -> \"itw/0\"); unique in "
                           "data.sources")
    path: str = documented("", "corpus root (any known layout) or CSV manifest; relative: to "
                           "the config file's folder")
    layout: str | None = documented(None, "a reader name (cl-spoof data check --help lists "
                                    "them); null: detect the layout")
    options: dict[str, Any] = documented(doc="reader options (fractions, version, ...)",
                                         factory=dict)
    train_split: str | None = documented(None, "its split learned by the run (null: "
                                         "data.train_split)")
    test_split: str | None = documented(None, "its split tested after every stage (null: "
                                        "data.test_split)")
    calibration_split: str | None = documented(None, "its split the calibration is fitted on "
                                               "(null: data.calibration_split)")
    max_train: int | None = bounded(None, 2, MAX_ROWS, low="must be at least 2 (a bona fide "
                                    "and a spoof utterance)",
                                    doc="cap on its training utterances (seeded, label ratio "
                                    "kept); null: no cap")
    max_test: int | None = bounded(None, 2, MAX_ROWS, low="must be at least 2 (a bona fide "
                                   "and a spoof utterance)",
                                   doc="cap on its test (and calibration) utterances; null: "
                                   "no cap")
    speaker_map: dict[str, str] = documented(
        doc="its speaker ids as the identities shared by every source: regular expression -> "
        "replacement (Python re.sub; the first pattern that matches an id applies, ids no "
        "pattern matches stay as they are), e.g. {'^libritts_': ''} makes 'libritts_1089' "
        "the speaker '1089' of another source", factory=dict)

    def check(self, prefix: str) -> None:
        """Every pattern of ``speaker_map`` compiles."""
        for pattern in self.speaker_map:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{prefix}speaker_map: {pattern!r} is not a regular "
                                  f"expression ({exc})") from None


@dataclass(frozen=True)
class ResplitConfig:
    """A speaker-disjoint split drawn anew over every source (``data.resplit_by_speaker``).

    The rule: each speaker identity (after the sources' ``speaker_map``) goes to the
    test split when ``u < test_fraction``, where ``u`` in [0, 1) is the first 64 bits of
    SHA-256 of ``"<seed>:<speaker>"``; every row of the train and test splits goes
    where its speaker goes. A speaker's side depends only on the seed and its id, so
    adding a source or an utterance never moves another speaker.
    """

    seed: int = bounded(0, 0, MAX_SEED, say=f"must be between 0 and {MAX_SEED}",
                        doc="seed of the hash that places each speaker")
    test_fraction: float = bounded(0.33, 0, 1, above=True, below=True,
                                   say="must be between 0 and 1 (both excluded)",
                                   doc="expected share of the speakers in the test split")


_CAP = "must be at least 1 (or left out for no cap)"


@dataclass(frozen=True)
class DataConfig:
    """Which utterances, in which order of experiences, at which length."""

    source: str = documented("demo", "\"demo\" (the embedded demo corpus), a corpus root of "
                             "any known layout, or a CSV manifest; relative: to the config "
                             "file's folder")
    demo_seed: int = bounded(0, 0, MAX_SEED, say=f"must be between 0 and {MAX_SEED}",
                             doc="seed of the generated demo corpus (source: demo)")
    attacks: tuple[str, ...] = documented((), "experience order; empty: every training "
                                          "attack, sorted")
    train_split: str = documented("train", "the split learned")
    test_split: str = documented("dev", "the split every attack is tested on after each stage")
    eval_only_attacks: tuple[str, ...] = documented(
        (), "attacks that exist only in the eval partition (ASVspoof A07-A19): their eval "
        "rows (and the eval bona fide) are split speaker-disjointly into train/test parts")
    eval_only_test_fraction: float = bounded(0.5, 0, 1, above=True, below=True,
                                             say="must be between 0 and 1",
                                             doc="share of the eval speakers tested on "
                                             "(eval_only_attacks)")
    num_samples: int = bounded(64_600, 1600, MAX_NUM_SAMPLES, low="must be at least 1600 (0.1 s)",
                               high=f"must be at most {MAX_NUM_SAMPLES} (10 minutes at 16 kHz)",
                               doc="fixed input length in samples at data.sample_rate "
                               "(training clips: a random crop; test clips: from the start; "
                               "shorter ones are repeated)")
    bonafide_sharing: str = choice("all", ("all", "disjoint"),
                                   doc="\"all\": every experience trains on all the bona "
                                   "fide; \"disjoint\": each gets its own share")
    allow_missing: bool = documented(False, "drop rows whose file is absent (a partial "
                                     "download) instead of refusing to start")
    cache_dir: str | None = documented(None, "decoded-waveform cache; null: the per-user "
                                       "cache (CL_SPOOF_CACHE_DIR)")
    max_train_per_attack: int | None = bounded(None, 1, MAX_ROWS, low=_CAP,
                                               doc="cap on spoof training clips per attack")
    max_test_per_attack: int | None = bounded(None, 1, MAX_ROWS, low=_CAP,
                                              doc="cap on spoof test clips per attack")
    max_bonafide_test: int | None = bounded(None, 1, MAX_ROWS, low=_CAP,
                                            doc="cap on bona fide test clips")
    sources: tuple[SourceConfig, ...] = documented(
        (), "several named sources (corpora, manifests) instead of data.source")
    experience_by: str = choice("attack", EXPERIENCE_UNITS,
                                doc="\"attack\": one experience per attack (of every "
                                "source); \"source\": one per source; \"family\": one per "
                                "family of data.families, every attack still its own column "
                                "of the EER matrix")
    families: dict[str, tuple[str, ...]] = documented(
        doc="with experience_by: family, the experiences in order (oldest first): family "
        "name -> fnmatch patterns of the attacks it learns, as the EER matrix names them "
        "(with several sources prefixed: 'vocoders_tts.is21-*'); attacks of no family are "
        "left out",
        factory=dict)
    held_out_families: tuple[str, ...] = documented(
        (), "families of data.families never learned, only tested after every stage: unseen "
        "systems (leave-one-family-out)")
    resplit_by_speaker: ResplitConfig | None = documented(
        None, "{seed, test_fraction}: ignore the sources' own train/test splits and draw one "
        "speaker-disjoint split over all of them (speaker ids after each source's "
        "speaker_map; a stable hash of the seed and the id places each speaker); null: keep "
        "the sources' splits")
    calibration_split: str | None = documented(
        None, "split scored after every stage to fit the score-to-LLR calibration of "
        "actDCF/Cllr (never trained on, never in the EER matrix); null: no calibration")
    sample_rate: int = bounded(SAMPLE_RATE, 8_000, MAX_RATE,
                               say=f"must be between 8000 and {MAX_RATE} Hz",
                               doc="rate every file is decoded and resampled to (24000 keeps "
                               "the 8-12 kHz band where neural-vocoder artefacts live)")
    level: str = choice("rms", LEVEL_MODES,
                        doc="input level, set on each decoded utterance before cropping, in "
                        "training and evaluation alike: rms (to level_db, default -26 dBFS), "
                        "peak (to level_db, default 0 dBFS) or none (as decoded)")
    level_db: float | None = bounded(None, -100, 20, say="must be between -100 and 20 dBFS",
                                     doc="target of data.level in dBFS; null: its default")
    pretrained_eval: str | None = documented(
        None, "what the pretrained model of model.init was trained on: a manifest or corpus "
        "root with labels (every row, whatever its split); after every stage, 0 included, "
        "its EER per attack becomes a column pretrained:<attack> of the EER matrix (never "
        "trained on): the forgetting of the pretraining. Needs model.init")

    def _check_families(self, prefix: str) -> None:
        """``families`` against ``experience_by`` and ``attacks``; plain family names."""
        if self.experience_by != "family":
            for key, value in (("families", self.families),
                               ("held_out_families", self.held_out_families)):
                if value:
                    raise ConfigError(f"{prefix}{key} is read with {prefix}experience_by: "
                                      f"family (it is {self.experience_by!r})")
            return
        if not self.families:
            raise ConfigError(f"{prefix}experience_by: family needs {prefix}families (family "
                              "name -> attack patterns, oldest family first)")
        if self.attacks:
            raise ConfigError(f"{prefix}attacks: with experience_by: family the experiences are "
                              f"the {prefix}families in their order; leave {prefix}attacks empty")
        for name, patterns in self.families.items():
            try:
                check_name(name, f"{prefix}families: family name")
            except BadNameError as exc:
                raise ConfigError(str(exc)) from None
            if not patterns or not all(isinstance(p, str) and p.strip() for p in patterns):
                raise ConfigError(f"{prefix}families.{name}: list the attacks of the family "
                                  f"(names or fnmatch patterns), got {list(patterns)}")
        unknown = [f for f in self.held_out_families if f not in self.families]
        if unknown:
            raise ConfigError(f"{prefix}held_out_families: {', '.join(unknown)} is not a family "
                              f"of {prefix}families ({', '.join(self.families)})")
        if set(self.families) <= set(self.held_out_families):
            raise ConfigError(f"{prefix}held_out_families holds every family; at least one must "
                              "be learned")

    def check(self, prefix: str) -> None:
        """Attack names, distinct split roles, families, the speaker resplit, and
        ``sources`` against the other keys."""
        for key, names in (("attacks", self.attacks), ("eval_only_attacks",
                                                       self.eval_only_attacks)):
            for name in names:
                try:
                    check_name(name, f"{prefix}{key}: attack name")
                except BadNameError as exc:
                    raise ConfigError(str(exc)) from None
        roles = [self.train_split, self.test_split] + (
            [self.calibration_split] if self.calibration_split is not None else [])
        if len(set(roles)) != len(roles):
            raise ConfigError(f"{prefix}train_split, {prefix}test_split and "
                              f"{prefix}calibration_split must be different splits, got "
                              f"{', '.join(roles)}")
        self._check_families(prefix)
        if self.resplit_by_speaker is not None:
            if self.eval_only_attacks:
                raise ConfigError(f"{prefix}resplit_by_speaker draws train and test splits of "
                                  f"its own; leave {prefix}eval_only_attacks empty")
            if self.calibration_split is not None:
                raise ConfigError(f"{prefix}resplit_by_speaker draws a train and a test split "
                                  f"only; set {prefix}calibration_split: null")
        if not self.sources:
            if self.experience_by == "source":
                raise ConfigError(f"{prefix}experience_by: source needs {prefix}sources (a list "
                                  f"of named sources), not {prefix}source")
            return
        if self.source != "demo":
            raise ConfigError(f"give {prefix}source or {prefix}sources, not both")
        if self.eval_only_attacks:
            raise ConfigError(f"{prefix}eval_only_attacks works with {prefix}source only; with "
                              f"{prefix}sources set each source's splits (train_split, "
                              "test_split)")
        if self.experience_by == "source" and self.attacks:
            raise ConfigError(f"{prefix}attacks: with experience_by: source the experiences are "
                              f"the {prefix}sources in their order; leave {prefix}attacks empty")
        seen: set[str] = set()
        for i, src in enumerate(self.sources):
            key = f"{prefix}sources[{i}]"
            try:  # it prefixes utterance ids and attack names (columns, file names)
                check_name(src.name, "source name")
            except BadNameError as exc:
                raise ConfigError(f"{key}.name: {exc}") from None
            if src.name in seen:
                raise ConfigError(f"{key}.name: source name {src.name!r} is used twice; names "
                                  "prefix utterance ids and must be unique")
            seen.add(src.name)
            if not src.path:
                raise ConfigError(f"{key}.path: the corpus root or manifest of source "
                                  f"{src.name!r}")
            own = [src.train_split or self.train_split, src.test_split or self.test_split]
            if self.calibration_split is not None:
                own.append(src.calibration_split or self.calibration_split)
            elif src.calibration_split is not None:
                raise ConfigError(f"{key}.calibration_split needs {prefix}calibration_split "
                                  "(the run's calibration split)")
            if len(set(own)) != len(own):
                raise ConfigError(f"{key}: its train, test and calibration splits must differ, "
                                  f"got {', '.join(own)}")


@dataclass(frozen=True)
class SelfDistillationConfig:
    """Self-distillation (``model.self_distillation``): the deepest exit teaches exits
    added after the shallow segments; added to any strategy's loss
    (docs/guide/detectors.md, "Self-distillation").

    Loss added: ``hard_weight * sum_i CE(z_i, y) + soft_weight * sum_i T^2 KL(p_deep/T ||
    p_i/T) + feature_weight * sum_i mean((f_i - f_deep)^2)`` over the shallow exits i.
    """

    enabled: bool = documented(False, "add self-distillation exits and their loss")
    segments: tuple[str, ...] = documented((), "layers whose outputs feed exits; empty: the "
                                           "preset's")
    hard_weight: float = bounded(0.7, 0, 1000, doc="cross-entropy at every shallow exit "
                                 "(BYOT's 1 - alpha)")
    soft_weight: float = bounded(0.3, 0, 1000, doc="KL from the deepest exit (BYOT's alpha)")
    feature_weight: float = bounded(0.1, 0, 1000, doc="squared distance to the deepest "
                                    "embedding")
    temperature: float = bounded(3.0, 0, 1000, above=True, doc="softmax temperature of the "
                                 "soft loss (BYOT's T)")

    def check(self, prefix: str) -> None:
        """An enabled self-distillation must weigh some loss."""
        if self.enabled and self.hard_weight + self.soft_weight + self.feature_weight <= 0:
            raise ConfigError(f"{prefix[:-1]}: hard_weight, soft_weight and feature_weight are "
                              "all 0; set one, or enabled: false")


@dataclass(frozen=True)
class ModelSpec:
    """The detector: a preset name, optional field overrides, self-distillation, and the
    pretrained weights a run starts from."""

    preset: str = documented("small", "the detector: a model preset (tiny, small, base, "
                             "lfcc_lcnn, ...; an unknown name lists them)")
    overrides: dict[str, Any] = documented(doc="fields of the preset's config to replace "
                                           "(e.g. {gru_hidden: 64})", factory=dict)
    self_distillation: SelfDistillationConfig = documented(
        doc="self-distillation exits", factory=SelfDistillationConfig)
    init: str | None = documented(
        None, "a pretrained model to start from (stage 0 of the run, evaluated before "
        "training): weights for this preset read with torch.load(weights_only=True) -- an "
        "official AASIST / AASIST-L file, any cl-spoof checkpoint, or a plain state dict; "
        "null: the preset's random initialisation")

    def check(self, prefix: str) -> None:
        """The input rate is the data's, not a model override."""
        if "sample_rate" in self.overrides:
            raise ConfigError(f"{prefix}overrides.sample_rate: the model's input rate is "
                              "data.sample_rate; set it there")
        if self.init is not None and not self.init.strip():
            raise ConfigError(f"{prefix}init: empty; give the path of a pretrained model's "
                              "file, or leave the key out")


_PROBABILITY = "must be a probability between 0 and 1"


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

    rawboost: int = bounded(5, RAWBOOST_ALGORITHMS[0], RAWBOOST_ALGORITHMS[-1],
                            say="must be a RawBoost algorithm id 0-8 (5 = LnL then ISD)",
                            doc="RawBoost algorithm: 0 none, 1 LnL convolutive, 2 ISD "
                            "impulsive, 3 SSI coloured additive, 4 = 1->2->3, 5 = 1->2 (LA "
                            "setting), 6 = 1->3, 7 = 2->3, 8 = 1 and 2 in parallel")
    p_rawboost: float = bounded(1.0, 0, 1, say=_PROBABILITY, doc="probability of RawBoost "
                                "per clip")
    p_codec: float = bounded(0.0, 0, 1, say=_PROBABILITY, doc="probability of band "
                             "limitation per clip")
    codec_rates: tuple[int, ...] = bounded((8_000, 11_025, 12_000, 16_000, 22_050), 1000,
                                           MAX_RATE, say="must list sample rates between 1000 "
                                           f"and {MAX_RATE} Hz",
                                           doc="rates the band limitation resamples down to")
    p_gain: float = bounded(0.0, 0, 1, say=_PROBABILITY, doc="probability of a random gain "
                            "per clip")
    gain_db: tuple[float, ...] = bounded((-12.0, 12.0), -100, 100,
                                         say="must be [low, high] in dB within -100 to 100",
                                         doc="[low, high] range of the random gain in dB")
    n_bands: int = bounded(5, 1, 100, doc="notch filters of RawBoost's filter generator")
    min_f: float = bounded(20.0, 0, MAX_RATE / 2, above=True, doc="lowest filter centre "
                           "frequency (Hz)")
    max_f: float | None = bounded(None, 0, MAX_RATE / 2, above=True,
                                  doc="highest filter centre frequency (Hz); null: half the "
                                  "sample rate")
    min_bw: float = bounded(100.0, 0, MAX_RATE / 2, above=True, doc="lowest filter "
                            "bandwidth (Hz)")
    max_bw: float = bounded(1000.0, 0, MAX_RATE / 2, above=True, doc="highest filter "
                            "bandwidth (Hz)")
    min_coeff: int = bounded(10, 3, 1000, doc="fewest filter coefficients")
    max_coeff: int = bounded(100, 3, 1000, doc="most filter coefficients")
    lnl_n_f: int = bounded(5, 1, 100, doc="LnL: number of non-linear terms")
    lnl_min_g: float = bounded(0.0, -100, 100, doc="LnL: lowest gain of the linear term (dB)")
    lnl_max_g: float = bounded(0.0, -100, 100, doc="LnL: highest gain of the linear term "
                               "(dB)")
    lnl_min_bias: float = bounded(5.0, -100, 100, doc="LnL: terms j >= 2 use gains in "
                                  "[min_g - max_bias, max_g - min_bias]")
    lnl_max_bias: float = bounded(20.0, -100, 100, doc="LnL: see lnl_min_bias")
    isd_p: float = bounded(10.0, 0, 100, say="must be a percentage between 0 and 100",
                           doc="ISD: at most this % of the samples get impulsive noise")
    isd_g_sd: float = bounded(2.0, 0, 100, doc="ISD: gain factor of the impulses")
    ssi_snr_min: float = bounded(10.0, -100, 200, doc="SSI: lowest signal-to-noise ratio "
                                 "(dB)")
    ssi_snr_max: float = bounded(40.0, -100, 200, doc="SSI: highest signal-to-noise ratio "
                                 "(dB)")

    def check(self, prefix: str) -> None:
        """Lists that must not be empty, and low ends that must not pass high ends."""
        k = prefix
        checks: list[tuple[bool, str]] = [
            (bool(self.codec_rates), f"{k}codec_rates must list at least one sample rate"),
            (len(self.gain_db) == 2 and self.gain_db[0] <= self.gain_db[1],
             f"{k}gain_db must be [low, high] in dB with low <= high, got {list(self.gain_db)}"),
            (self.max_f is None or self.min_f < self.max_f, f"{k}min_f must be below max_f"),
            (self.min_bw <= self.max_bw, f"{k}min_bw must be at most max_bw"),
            (self.min_coeff <= self.max_coeff,
             f"{k}min_coeff and max_coeff must satisfy 3 <= min_coeff <= max_coeff <= 1000"),
            (self.lnl_min_g <= self.lnl_max_g, f"{k}lnl_min_g must be at most lnl_max_g"),
            (self.ssi_snr_min <= self.ssi_snr_max, f"{k}ssi_snr_min must be at most ssi_snr_max"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every strategy."""

    epochs: int = bounded(4, 1, MAX_EPOCHS, doc="epochs of every experience")
    first_epochs: int | None = bounded(None, 1, MAX_EPOCHS, doc="epochs of the first "
                                       "experience; null: train.epochs")
    batch_size: int = bounded(32, 1, MAX_BATCH, say=f"must be between 1 and {MAX_BATCH}",
                              doc="training batch (the global batch under torchrun)")
    eval_batch_size: int = bounded(64, 1, MAX_BATCH, say=f"must be between 1 and {MAX_BATCH}",
                                   doc="evaluation batch")
    lr: float = bounded(1e-3, 0, 10, above=True, doc="Adam learning rate")
    weight_decay: float = bounded(0.0, 0, 10, doc="Adam weight decay")
    class_weighted_loss: bool = documented(True, "weigh the cross-entropy by inverse class "
                                           "frequency of each experience")
    threads: int = bounded(0, 0, MAX_THREADS, say=f"must be between 0 and {MAX_THREADS}",
                           doc="torch intra-op threads; 0: torch's default (the thread count "
                           "changes the order of floating-point sums)")
    workers: int = bounded(0, 0, MAX_WORKERS, say=f"must be between 0 and {MAX_WORKERS} "
                           "(DataLoader processes)", doc="DataLoader worker processes")
    device: str = documented("auto", "auto (cuda when available), cpu, cuda, cuda:1, ...")
    amp: str = choice("off", ("off", "bf16"), doc="bf16: bfloat16 autocast for forward "
                      "passes (a GPU speed-up)")
    compile: bool = documented(False, "torch.compile the conv front end (worth it for long "
                               "GPU runs)")
    compile_backend: str = documented("inductor", "torch.compile backend (\"eager\" for "
                                      "debugging)")
    dist_timeout: float = bounded(600.0, 0, MAX_TIMEOUT, above=True,
                                  low="must be positive (seconds)",
                                  high=f"must be at most {MAX_TIMEOUT} (seconds: a week)",
                                  doc="under torchrun: seconds a rank waits in a collective "
                                  "before the job fails")
    trainable: tuple[str, ...] = documented(
        (), "freeze-and-learn: fnmatch patterns of parameter/module names that keep learning "
        "after the first experience (the rest is frozen); empty: everything learns")
    augment: AugmentConfig | None = documented(doc="waveform augmentation of training clips; "
                                               "null: none", factory=AugmentConfig)
    feature_cache: bool = documented(
        False, "compute the features of the model's frozen prefix (AASIST's sinc front end and "
        "encoder, the ssl encoder, the ResNet-GRU front end and blocks) once per clip and "
        "reuse them while it stays frozen (in memory, per run): later epochs and stages run "
        "only the layers that learn. Needs the whole prefix frozen (train.trainable naming "
        "only later layers; ssl: trainable_layers 0) and train.augment: null; training crops "
        "then start at one of train.feature_cache_crops offsets per clip")
    feature_cache_crops: int = bounded(1, 1, 64, doc="with train.feature_cache: training "
                                       "crops start at one of this many evenly spaced "
                                       "offsets in each clip (1: at its start; every new "
                                       "offset is one more prefix pass per clip)")
    feature_cache_mb: int = bounded(4096, 1, 1_048_576, doc="with train.feature_cache: most "
                                    "memory (MiB) the cached features take; clips beyond it "
                                    "run the whole network")
    feature_cache_dir: str | None = documented(
        None, "with train.feature_cache: a folder that also keeps every clip's features on "
        "disk, one file per clip under a digest of the frozen weights, so later runs from "
        "the same weights (the runs of a study from one pretrained model) compute them "
        "once; safe to share between processes; never pruned (null: in memory only)")
    lr_schedule: str = choice("cosine", LR_SCHEDULES,
                              doc="learning rate within each experience, per optimiser step: "
                              "constant; cosine (linear warm-up from lr/10 over "
                              "warmup_epochs, then half-cosine decay to lr * lr_final); "
                              "exponential (warm-up, then lr * lr_gamma ** epochs)")
    balance: str = choice("none", ("none", "attack"),
                          doc="how training batches are drawn: none (every clip once per "
                          "epoch, shuffled); attack (drawn with replacement so that every "
                          "attack of the experience weighs alike among its spoofs, bona fide "
                          "keeping its share: a system with 25 training spoofs counts as "
                          "much as one with 270; not with replay's own loader, nor torchrun)")
    warmup_epochs: float = bounded(1.0, 0, MAX_EPOCHS, doc="warm-up of the cosine and "
                                   "exponential schedules, in epochs")
    lr_final: float = bounded(0.01, 0, 1, say="must be between 0 and 1 (a fraction of lr)",
                              doc="end of the cosine decay, a fraction of lr")
    lr_gamma: float = bounded(0.95, 0, 1, above=True, say="must be in (0, 1]",
                              doc="decay per epoch of the exponential schedule")
    loggers: tuple[str, ...] = field(
        default=(), metadata={"check": Choice(TRAIN_LOGGERS),
                              "doc": "extra training loggers besides logs/log.txt and the CSV "
                              "logs: tensorboard (writes logs/tensorboard/; needs pip install "
                              "'cl-spoof[tensorboard]')"})

    def check(self, prefix: str) -> None:
        """``feature_cache`` against ``augment``: augmented clips are never the same twice;
        ``feature_cache_dir`` only with the cache."""
        if self.feature_cache_dir is not None and not self.feature_cache:
            raise ConfigError(f"{prefix}feature_cache_dir: set only with "
                              f"{prefix}feature_cache: true (or remove it)")
        a = self.augment
        if self.feature_cache and a is not None and (
                (a.rawboost and a.p_rawboost > 0) or a.p_codec > 0 or a.p_gain > 0):
            raise ConfigError(f"{prefix}feature_cache: {prefix}augment changes every "
                              "training clip, so no cached feature could be reused; set "
                              f"{prefix}augment: null (or turn the cache off)")


@dataclass(frozen=True)
class StrategyConfig:
    """A continual-learning strategy and its hyper-parameters.

    In YAML the hyper-parameters sit flat next to ``name`` (``strategy: {name: dfwf,
    kd_weight: 2.0}``) and read as attributes (``cfg.strategy.kd_weight``). The
    config only holds them; the strategy registry declares, types and checks them and
    fills in the defaults (``resolve_strategy``), so a resolved config has every
    declared key, whatever the name, and one config serves a comparison of several
    strategies. ``hyperparameters`` must not be modified (build a new config instead).
    """

    name: str = documented("naive", "the strategy (naive, joint, dfwf, lwf, ewc, replay, ...; "
                           "cl-spoof run --help lists them)")
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        """``cfg.strategy.<hyper-parameter>``."""
        if key.startswith("_") or key == "hyperparameters":
            raise AttributeError(key)
        try:
            return self.hyperparameters[key]
        except KeyError:
            raise AttributeError(f"StrategyConfig has no hyper-parameter {key!r}") from None


@dataclass(frozen=True)
class MetricsConfig:
    """Official metrics computed after every stage, and the score-file format."""

    official: tuple[str, ...] = documented(
        (), "metrics that must be computed (min_dcf, act_dcf, cllr, min_tdcf; an error "
        "before training when an input is missing); empty: every one whose inputs the "
        "config gives")
    asv_scores: str | None = documented(
        None, "the organisers' ASVspoof 2019 LA ASV score file of the test partition "
        "(ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt), for "
        "min t-DCF; relative: to the config file's folder")
    tdcf_source: str | None = documented(None, "with several data.sources: the ASVspoof "
                                         "2019 LA source whose scores min t-DCF uses")
    score_format: str = choice("asvspoof2019", SCORE_FORMATS,
                               doc="score files: asvspoof2019 (utt_id attack key score) or "
                               "asvspoof5 (the Track 1 submission format, with a key file)")
    matched_by: str | None = documented(
        None, "sub-corpus of each utterance for the matched EER (each attack's spoofs against "
        "only the bona fide of its own sub-corpus): a column of the utterance table or "
        "\"folder\" (the first folder below the one all files share); null: none")
    undertrained_eer: float | None = bounded(
        40.0, 0, 100, say="must be a percentage between 0 and 100",
        doc="warn when an attack's EER at the stage that learned it is above this (%): an "
        "under-trained run; null: never warn")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; written back as the run's ``config.yaml``."""

    data: DataConfig = documented(doc="which utterances, in which order of experiences",
                                  factory=DataConfig)
    model: ModelSpec = documented(doc="the detector", factory=ModelSpec)
    train: TrainConfig = documented(doc="optimisation settings shared by every strategy",
                                    factory=TrainConfig)
    strategy: StrategyConfig = documented(doc="the continual-learning strategy and its "
                                          "hyper-parameters", factory=StrategyConfig)
    seed: int = bounded(0, 0, MAX_SEED, say=f"must be between 0 and {MAX_SEED}",
                        doc="seed of the initial weights, data order and augmentation")
    metrics: MetricsConfig = documented(doc="official metrics and score files",
                                        factory=MetricsConfig)

    def check(self, prefix: str) -> None:
        """``metrics.tdcf_source`` against ``metrics.asv_scores`` and ``data.sources``;
        ``data.pretrained_eval`` against ``model.init``."""
        if self.data.pretrained_eval is not None and self.model.init is None:
            raise ConfigError("data.pretrained_eval names what the pretrained model of "
                              "model.init was trained on; set model.init too")
        m, names = self.metrics, [s.name for s in self.data.sources]
        if m.tdcf_source is not None:
            if m.asv_scores is None:
                raise ConfigError("metrics.tdcf_source is set but metrics.asv_scores is not")
            if m.tdcf_source not in names:
                raise ConfigError(f"metrics.tdcf_source: {m.tdcf_source!r} is not a name in "
                                  f"data.sources ({', '.join(names) or 'none'})")
        elif m.asv_scores is not None and len(names) > 1:
            raise ConfigError("metrics.tdcf_source: name the ASVspoof 2019 LA source of "
                              f"data.sources ({', '.join(names)}) whose scores min t-DCF uses")


def _check_section(section: Any, prefix: str) -> None:
    """Every field's declared check, the nested sections', then the section's own."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, StrategyConfig):
            _check_section(value, f"{key}.")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                _check_section(item, f"{key}[{i}].")
        else:
            check_field(key, value, f)
    own = getattr(type(section), "check", None)
    if own is not None:
        own(section, prefix)


def validate(cfg: RunConfig) -> None:
    """Every check of every section (not the strategy's or the metrics' registry checks)."""
    _check_section(cfg, "")
