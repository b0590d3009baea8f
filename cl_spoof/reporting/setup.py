"""What the runs of a report share and where they differ: the compatibility check and the
**Setup** section.

A report compares runs of one benchmark and one model: their data (the ``data`` section
of the config and, where recorded, the digest of the utterances), attack order, splits
and model (``model.preset`` and ``model.overrides``) must match, or :func:`check_runs`
refuses them naming the keys that differ. Everything else may differ between runs (that
is what an ablation changes); epochs that differ are worth a warning, because runs
trained for different lengths are seldom a fair comparison. :func:`setup_rows` and
:func:`runs_rows` are the Setup section's two tables: what every run shares, and each
run's own settings (label, strategy, hyper-parameters, seeds, versions, config digests).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cl_spoof.config import config_from_dict, to_dict
from cl_spoof.errors import ConfigError
from cl_spoof.labels import JOINT, PRETRAINED
from cl_spoof.reporting.runs import ReportError, RunRecord

#: Keys of ``data`` that may differ: where the decoded audio is cached, and whether
#: missing files were dropped (the data digest tells whether the utterances differ).
DATA_FREE = ("data.cache_dir", "data.allow_missing")
#: Keys that say where the data is: compared only when a run has no data digest (the
#: digest then says whether two paths hold the same utterances).
DATA_PLACE = ("data.source",)
#: Keys of the model that must match (``model.self_distillation`` is a training option).
MODEL_KEYS = ("model.preset", "model.overrides")
EPOCH_KEYS = ("train.epochs", "train.first_epochs")
DIGEST_CHARS = 12  # of a digest shown in a table


def normal_config(raw: Any) -> dict[str, Any]:
    """A stored ``config.yaml`` with every default filled in (as a config of today
    reads it); the stored mapping as it is when it no longer validates."""
    if not isinstance(raw, dict):
        return {}
    try:
        data = to_dict(config_from_dict(raw))
    except ConfigError:
        return raw
    return data if isinstance(data, dict) else raw


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data": {"source": x}}`` -> ``{"data.source": x}``; lists of mappings by index
    (``data.sources[0].path``), other lists as they are."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix[:-1]}[{i}]."))
        return out
    return {prefix[:-1]: data}


def text(value: Any) -> str:
    """A config value as the Setup tables write it (``—`` for none)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _flat(run: RunRecord) -> dict[str, Any]:
    return flatten(normal_config(run.config))


def _digest(run: RunRecord) -> str | None:
    value = run.info.get("data_digest")
    return value if isinstance(value, str) and value else None


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith((p + ".", p + "[")) for p in prefixes)


def _must_match(key: str, place: bool) -> bool:
    """Whether ``key`` belongs to the data or model a report holds fixed (``place``:
    compare where the data is, too)."""
    if _under(key, MODEL_KEYS):
        return True
    if not _under(key, ("data",)) or _under(key, DATA_FREE):
        return False
    if _under(key, DATA_PLACE) or (key.startswith("data.sources[") and key.endswith(".path")):
        return place
    return True


def _differences(a: dict[str, Any], b: dict[str, Any], place: bool) -> list[str]:
    keys = sorted(k for k in a.keys() | b.keys() if _must_match(k, place)
                  and a.get(k) != b.get(k))
    # a whole section given in one run and absent in the other counts once
    return [k for k in keys if not any(k != o and k.startswith(o + ".") for o in keys)]


def _order(run: RunRecord) -> tuple[str, ...] | None:
    """What the run's stages learned, in order (its starting model's stage 0 included;
    None for joint training)."""
    trained = [a for a in run.learned if a != PRETRAINED]
    return None if trained == [JOINT] else tuple(run.learned)


def check_runs(runs: Sequence[RunRecord]) -> list[str]:
    """Refuse runs of different data, attack order, splits or model (:class:`ReportError`
    naming the keys that differ and their values); return the notes for what may differ
    but deserves a word (epochs)."""
    first = runs[0]
    ref = _flat(first)
    for run in runs[1:]:
        flat = _flat(run)
        mine, theirs = _digest(first), _digest(run)
        place = mine is None or theirs is None
        diff = _differences(ref, flat, place)
        shown = [f"{k} ({text(ref.get(k))} vs {text(flat.get(k))})" for k in diff[:6]]
        if len(diff) > 6:
            shown.append(f"and {len(diff) - 6} more")
        if mine is not None and theirs is not None and mine != theirs:
            shown.insert(0, f"the data itself (digest {mine[:DIGEST_CHARS]} vs "
                            f"{theirs[:DIGEST_CHARS]}: other utterances, labels or splits)")
        if shown:
            raise ReportError(f"{run.path}: not the benchmark of {first.path}: it differs in "
                              f"{', '.join(shown)}; a report compares runs of the same data, "
                              "attack order, splits and model (report them separately)")
    ordered = [r for r in runs if _order(r) is not None]
    for run in ordered[1:]:
        first_pre, run_pre = PRETRAINED in ordered[0].learned, PRETRAINED in run.learned
        if first_pre != run_pre:
            started = run if run_pre else ordered[0]
            raise ReportError(f"{started.path}: starts from a pretrained model (stage 0), "
                              f"unlike {(ordered[0] if run_pre else run).path}; a report "
                              "compares runs that start alike (report them separately)")
        if run.learned != ordered[0].learned:
            raise ReportError(f"{run.path}: learns the attacks in the order "
                              f"{', '.join(run.learned)}, unlike {ordered[0].path} "
                              f"({', '.join(ordered[0].learned)}); a report compares runs of "
                              "one attack order (data.attacks)")
    return _epoch_notes(runs)


def _epoch_notes(runs: Sequence[RunRecord]) -> list[str]:
    notes = []
    for key in EPOCH_KEYS:
        values: dict[str, list[str]] = {}
        for run in runs:
            value = text(_flat(run).get(key))
            labels = values.setdefault(value, [])
            if run.label not in labels:
                labels.append(run.label)
        if len(values) > 1:
            parts = "; ".join(f"{v} for {', '.join(labels)}" for v, labels in values.items())
            notes.append(f"the runs were trained for different numbers of epochs ({key}: "
                         f"{parts}); their numbers are not a like-for-like comparison")
    return notes


# --------------------------------------------------------------------------- Setup tables


def _source(flat: dict[str, Any]) -> str:
    names = sorted({k.split("]")[0] + "]" for k in flat if k.startswith("data.sources[")})
    if names:
        return "; ".join(f"{flat.get(n + '.name')}: {flat.get(n + '.path')}" for n in names)
    return text(flat.get("data.source"))


def _model(flat: dict[str, Any]) -> str:
    overrides = {k[len("model.overrides."):]: v for k, v in flat.items()
                 if k.startswith("model.overrides.")}
    shown = text(flat.get("model.preset"))
    if overrides:
        shown += " with " + ", ".join(f"{k}={text(v)}" for k, v in sorted(overrides.items()))
    return shown


def _epochs(flat: dict[str, Any]) -> str:
    epochs, first = flat.get("train.epochs"), flat.get("train.first_epochs")
    if first is None or first == epochs:
        return f"{text(epochs)} per experience"
    return f"{text(first)} for the first experience, {text(epochs)} for each later one"


def _splits(flat: dict[str, Any]) -> str:
    out = f"train: {text(flat.get('data.train_split'))}, test: " \
          f"{text(flat.get('data.test_split'))}"
    if flat.get("data.calibration_split") is not None:
        out += f", calibration: {text(flat.get('data.calibration_split'))}"
    if flat.get("data.eval_only_attacks"):
        out += f"; eval-only attacks {text(flat.get('data.eval_only_attacks'))} split " \
               f"{text(flat.get('data.eval_only_test_fraction'))} to test"
    return out


def _input(flat: dict[str, Any]) -> str:
    rate, samples = flat.get("data.sample_rate"), flat.get("data.num_samples")
    if isinstance(rate, int | float) and isinstance(samples, int | float) and rate:
        return f"{text(samples)} samples at {text(rate)} Hz ({samples / rate:g} s), level " \
               f"{text(flat.get('data.level'))}"
    return f"{text(samples)} samples at {text(rate)} Hz"


def _training(flat: dict[str, Any]) -> str:
    augment = "none" if flat.get("train.augment") is None and not any(
        k.startswith("train.augment.") for k in flat) else (
        f"RawBoost {text(flat.get('train.augment.rawboost'))} with probability "
        f"{text(flat.get('train.augment.p_rawboost'))}")
    return (f"batch {text(flat.get('train.batch_size'))}, lr {text(flat.get('train.lr'))} "
            f"({text(flat.get('train.lr_schedule'))}), weight decay "
            f"{text(flat.get('train.weight_decay'))}, augmentation {augment}")


def _versions(run: RunRecord) -> str:
    versions = run.info.get("versions")
    if not isinstance(versions, dict) or not versions:
        return "not recorded"
    return ", ".join(f"{k} {v}" for k, v in versions.items())


#: The shared settings of the Setup table: (what, how a run's flat config shows it).
SHARED = (
    ("data source", _source),
    ("splits", _splits),
    ("input", _input),
    ("model", _model),
    ("epochs", _epochs),
    ("training", _training),
)


def _shared_or_per_run(values: dict[str, str]) -> str:
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return "differs by run: " + "; ".join(f"{label}: {v}" for label, v in values.items())


def setup_rows(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    """The Setup table: one row per setting (``setting``, ``value``), what the runs share,
    or each label's value where they differ."""
    flats = {run.path: _flat(run) for run in runs}

    def per_label(show: Any) -> str:
        values: dict[str, str] = {}
        for run in runs:
            values.setdefault(run.label, show(flats[run.path]))
        return _shared_or_per_run(values)

    rows = [{"setting": what, "value": per_label(show)} for what, show in SHARED[:1]]
    digests = {_digest(r) for r in runs}
    digest = next(iter(digests)) if len(digests) == 1 else None
    rows.append({"setting": "data digest",
                 "value": digest[:DIGEST_CHARS] + " (SHA-256 of the utterance ids, labels, "
                          "attacks, speakers and splits)" if digest else
                 "not recorded by every run (runs of an older cl-spoof)"})
    orders = [o for o in map(_order, runs) if o is not None]
    order = orders[0] if orders else tuple(runs[0].attacks)
    rows.append({"setting": "attack order", "value": " → ".join(
        a for a in order if a != PRETRAINED)})
    if any(PRETRAINED in r.learned for r in runs):
        rows.append({"setting": "starting model", "value": per_label(
            lambda flat: text(flat.get("model.init")))})
    rows += [{"setting": what, "value": per_label(show)} for what, show in SHARED[1:]]
    rows.append({"setting": "seeds", "value": ", ".join(
        str(s) for s in sorted({r.seed for r in runs}))})
    rows.append({"setting": "software", "value": _shared_or_per_run(
        {f"{r.label}, seed {r.seed}": _versions(r) for r in runs})})
    return rows


def hyperparameter_text(run: RunRecord) -> str:
    """The run's strategy hyper-parameters (its own, as declared by its strategy)."""
    from cl_spoof.strategies.registry import describe_hyperparameters

    strategy = normal_config(run.config).get("strategy") or {}
    values = {k: v for k, v in strategy.items() if k != "name"} if isinstance(
        strategy, dict) else {}
    return ", ".join(describe_hyperparameters(run.strategy, values)) or "—"


def other_differences(run: RunRecord, first: RunRecord) -> list[str]:
    """The config keys (besides strategy, seed and the Setup's fixed keys) in which ``run``
    differs from ``first``: what an ablation changed."""
    a, b = _flat(first), _flat(run)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)
                  and not k.startswith("strategy.") and k != "seed")
    return [k for k in keys if not any(k != o and k.startswith(o + ".") for o in keys)]


def runs_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run: label, strategy, seed, hyper-parameters, epochs, what differs from
    the first run, versions, digests and folder (``runs.csv``)."""
    first = runs[0]
    rows = []
    for run in runs:
        flat = _flat(run)
        stored = run.info.get("versions")
        versions: dict[str, Any] = stored if isinstance(stored, dict) else {}
        rows.append({
            "label": run.label, "strategy": run.strategy, "seed": run.seed,
            "hyperparameters": hyperparameter_text(run),
            "epochs": flat.get("train.epochs"), "first_epochs": flat.get("train.first_epochs"),
            "differs_from_first_in": " ".join(other_differences(run, first)),
            "cl_spoof": versions.get("cl-spoof"), "torch": versions.get("torch"),
            "avalanche": versions.get("avalanche"),
            "config_digest": run.info.get("config_digest"), "data_digest": _digest(run),
            "run_dir": str(run.path)})
    return rows
