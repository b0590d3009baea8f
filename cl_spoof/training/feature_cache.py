"""``FeatureCachePlugin``: the features of a frozen prefix computed once per clip
(``train.feature_cache``), with any strategy.

A detector declares its prefix (:meth:`~cl_spoof.models.base.Detector.prefix_modules`,
e.g. AASIST's sinc front end and residual encoder, the ``ssl`` encoder) and splits its
forward into ``forward_suffix(forward_prefix(x))``. Once ``train.trainable`` has frozen
that whole prefix, its output for a clip never changes, so this plugin keeps it and the
model's forward runs only the layers that learn.

**Keys.** Every cached row is found by a BLAKE2b digest of the exact input the model gets
(the cropped clip's float32 samples and its length: the audio, the crop and the level
alike), under a digest of the prefix itself: the detector's class and config (sizes,
sample rate), every parameter and buffer of the prefix modules, the input's dtype and
device type and the autocast state. Other audio, another crop or changed prefix weights
therefore never meet a stale entry: when the prefix digest changes (the first experience
trained it, a checkpoint was loaded) the cache starts afresh. Training and evaluation
share entries: a prefix is served in training only once it is checked to compute there
what it computes in evaluation (no dropout, BatchNorm pinned to its running statistics,
no random masking: a detector declares no prefix otherwise).

**In memory, per run**, bounded by ``max_bytes`` (``train.feature_cache_mb``): features
are large (AASIST-L: 64 KB per 4-s clip; a frozen SSL encoder keeps every used layer's
frames) and belong to one model's weights, and a run revisits its own clips across
epochs and stages; clips beyond the bound run the whole network each time.
**On disk too**, with ``folder`` (``train.feature_cache_dir``): every row is also kept as
one file ``<prefix digest>/<input digest>.pt`` under it, found again by any later run or
any process started from the same weights (the runs of a study that all start from one
pretrained model compute each clip's features once). A row is written to a temporary
file and renamed into place, so processes sharing the folder never read half a file
and need no lock (two writing the same row write the same bytes). The folder is never
pruned by cl-spoof: delete it when the study is done.

**When it serves.** In every training epoch of an experience where the whole prefix is
frozen (from the second experience with ``train.trainable``, from the first after
``model.init``), in the passes other plugins run over the learnt experience before the
next one (RAWM's, RWM's and RegO's), and in every evaluation; a frozen copy of the model
a plugin keeps as ``teacher`` (DFWF's) is served with it while its prefix is the same.
Never for a batch while another hook watches a layer of the prefix (self-distillation
exits, a DFWF layer inside it): those run the whole network, as without the cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.infra.files import atomic_write_with
from cl_spoof.models.base import Detector, serve_prefix
from cl_spoof.strategies.layers import matches

__all__ = ["FeatureCache", "FeatureCachePlugin", "prefix_digest"]

KEY = "train.feature_cache"


def _detector(model: nn.Module) -> Detector:
    """The detector inside a data-parallel wrapper (or ``model`` itself)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, Detector):
        raise ConfigError(f"{KEY}: the model ({type(inner).__name__}) is not a cl-spoof "
                          "detector")
    return inner


def _prefix_tensors(model: Detector) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer (persistent or not) of the prefix modules, by name."""
    out: list[tuple[str, torch.Tensor]] = []
    for name in model.prefix_modules():
        module = model.get_submodule(name)
        out += [(f"{name}.{n}", t) for n, t in module.named_parameters()]
        out += [(f"{name}.{n}", t) for n, t in module.named_buffers()]
    return out


def prefix_digest(model: Detector) -> bytes:
    """Digest of what the prefix computes: class, config, every parameter and buffer."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__qualname__}|{getattr(model, 'config', None)!r}".encode())
    for name, t in _prefix_tensors(model):
        value = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"|{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.view(torch.uint8).numpy().data if value.numel() else b"")
    return h.digest()


def _watched(model: Detector) -> bool:
    """Whether a hook other than freezing's watches a prefix module (its output or
    input would then be expected: run the whole network)."""
    from cl_spoof.training.freeze import _stay_in_eval

    for name in model.prefix_modules():
        for module in model.get_submodule(name).modules():
            if module._forward_hooks or any(h is not _stay_in_eval for h in
                                            module._forward_pre_hooks.values()):
                return True
    return False


class FeatureCache:
    """Prefix features by input digest, for one prefix digest at a time, in memory and
    (with ``folder``) on disk."""

    def __init__(self, max_bytes: int, folder: str | Path | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.folder = None if folder is None else Path(folder)
        self.entries: dict[bytes, torch.Tensor] = {}
        self.nbytes = 0
        self.prefix: bytes | None = None
        self.hits = self.misses = self.full = self.bypassed = self.disk_hits = 0

    def use_prefix(self, digest: bytes) -> None:
        """Serve the prefix of ``digest``; a new one drops every entry."""
        if digest != self.prefix:
            self.entries.clear()
            self.nbytes = 0
            self.prefix = digest

    def __len__(self) -> int:
        return len(self.entries)

    def features(self, model: Detector, x: torch.Tensor) -> torch.Tensor:
        """``model.forward_prefix(x)``, row by row from the cache where it holds them."""
        if self.prefix is None or _watched(model):
            self.bypassed += 1
            return model.forward_prefix(x)
        rows = x.detach().to("cpu").contiguous()
        state = (f"{x.dtype}|{x.device.type}|"
                 f"{torch.is_autocast_enabled(x.device.type)}|{tuple(x.shape[1:])}").encode()
        keys = []
        for row in rows:
            h = hashlib.blake2b(state, digest_size=16)
            h.update(row.view(torch.uint8).numpy().data)
            keys.append(h.digest())
        found = {i: row for i, k in enumerate(keys)
                 if (row := self.entries.get(k)) is not None or (row := self._load(k)) is not None}
        missing = [i for i in range(len(keys)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        if len(missing) == len(keys):  # the whole batch, as the network would
            computed = model.forward_prefix(x)
            self._store(keys, computed)
            return computed
        if missing:
            fresh = model.forward_prefix(x[missing])
            self._store([keys[i] for i in missing], fresh)
            found.update(zip(missing, fresh, strict=True))
        return torch.stack([found[i].to(x.device) for i in range(len(keys))])

    def _store(self, keys: list[bytes], values: torch.Tensor) -> None:
        per_row = values[0].numel() * values.element_size() if len(values) else 0
        for k, v in zip(keys, values, strict=True):
            keep = k not in self.entries and self.nbytes + per_row <= self.max_bytes
            if not keep and self._file(k) is None:
                self.full += k not in self.entries
                continue
            row = v.detach().to("cpu", copy=True)
            self._save(k, row)
            if keep:
                self.entries[k] = row
                self.nbytes += per_row
            elif k not in self.entries:
                self.full += 1

    def _file(self, key: bytes) -> Path | None:
        """Where the row of ``key`` lives on disk (None: no folder, or no prefix yet)."""
        if self.folder is None or self.prefix is None:
            return None
        return self.folder / self.prefix.hex() / f"{key.hex()}.pt"

    def _load(self, key: bytes) -> torch.Tensor | None:
        """The row of ``key`` from disk (kept in memory while the bound allows), or None."""
        path = self._file(key)
        if path is None or not path.is_file():
            return None
        try:
            row = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged row is computed (and written) again
            return None
        if not isinstance(row, torch.Tensor):
            return None
        self.disk_hits += 1
        per_row = row.numel() * row.element_size()
        if self.nbytes + per_row <= self.max_bytes:
            self.entries[key] = row
            self.nbytes += per_row
        else:
            self.full += 1
        return row

    def _save(self, key: bytes, row: torch.Tensor) -> None:
        """Write the row of ``key`` to disk, atomically (never half a file)."""
        path = self._file(key)
        if path is not None and not path.is_file():
            atomic_write_with(path, lambda tmp: torch.save(row, tmp))


class FeatureCachePlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Serves the model's frozen prefix from a :class:`FeatureCache` (module notes).

    ``trainable``: the patterns of ``train.trainable`` (checked by :meth:`check`: the
    whole prefix must stay frozen once freezing starts). Put it after
    :class:`~cl_spoof.training.FreezePlugin`, which must have frozen the prefix before
    this plugin's ``before_training_exp`` looks.
    """

    def __init__(self, trainable: tuple[str, ...] | list[str] = (),
                 max_mb: float = 4096, folder: str | Path | None = None) -> None:
        super().__init__()
        self.trainable = tuple(trainable)
        self.cache = FeatureCache(int(max_mb * 2**20), folder)
        self._train_digest: bytes | None = None  # set while an experience's prefix is frozen
        self._served: list[Detector] = []
        self._resume: bool = False  # serve training again after an evaluation inside it

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` naming the key when the cache cannot apply: no prefix,
        or a prefix that would not be wholly frozen."""
        detector = _detector(model)
        names = detector.prefix_modules()
        if not names:
            raise ConfigError(f"{KEY}: {detector.no_prefix_reason()}")
        learning = [n for n, p in _prefix_params(detector) if p.requires_grad and (
            not self.trainable or any(matches(n, pat) for pat in self.trainable))]
        if not learning:
            return
        where = ", ".join(names)
        if not self.trainable:
            raise ConfigError(f"{KEY}: nothing of the model's prefix ({where}) is frozen; set "
                              "train.trainable to layers after it (the rest is then frozen)")
        more = f" (and {len(learning) - 1} more)" if len(learning) > 1 else ""
        raise ConfigError(f"{KEY}: train.trainable lets {learning[0]}{more} learn, inside "
                          f"the prefix ({where}) that must be wholly frozen; name only layers "
                          "after it")

    # ------------------------------------------------------------------ training

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Serve this experience's epochs when the whole prefix is frozen now."""
        model = _detector(strategy.model)
        frozen = all(not p.requires_grad for _, p in _prefix_params(model))
        self._train_digest = prefix_digest(model) if frozen else None

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if self._train_digest is not None and not self._served:
            _check_deterministic(_detector(strategy.model))
            self._serve(strategy, self._train_digest)

    def after_training(self, strategy: Any, **kwargs: Any) -> None:
        """Stop once every plugin's end-of-experience pass has run."""
        self._stop()
        self._train_digest = None

    # ------------------------------------------------------------------ evaluation

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._resume = bool(self._served)
        self._stop()
        self._serve(strategy, prefix_digest(_detector(strategy.model)))

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._stop()
        if self._resume and self._train_digest is not None:
            self._serve(strategy, self._train_digest)
        self._resume = False

    # ------------------------------------------------------------------ plumbing

    def _serve(self, strategy: Any, digest: bytes) -> None:
        """Serve the model, and every plugin's ``teacher`` whose prefix is the same."""
        self.cache.use_prefix(digest)
        self._served = [_detector(strategy.model)]
        for plugin in getattr(strategy, "plugins", ()):
            teacher = getattr(plugin, "teacher", None)
            inner = getattr(teacher, "module", teacher)
            if isinstance(inner, Detector) and prefix_digest(inner) == digest:
                self._served.append(inner)
        for model in self._served:
            serve_prefix(model, self.cache.features)

    def _stop(self) -> None:
        for model in self._served:
            serve_prefix(model, None)
        self._served = []


def _prefix_params(model: Detector) -> list[tuple[str, nn.Parameter]]:
    """The prefix's parameters under their names in the whole model."""
    return [(f"{name}.{n}", p) for name in model.prefix_modules()
            for n, p in model.get_submodule(name).named_parameters()]


def _check_deterministic(model: Detector) -> None:
    """Raise :class:`ConfigError` when a prefix layer would still behave differently in
    training (dropout, BatchNorm on batch statistics): its output could not be reused."""
    from cl_spoof.training.freeze import _stay_in_eval

    for name in model.prefix_modules():
        for sub, module in model.get_submodule(name).named_modules():
            if not module.training:
                continue
            pinned = any(h is _stay_in_eval for h in module._forward_pre_hooks.values())
            if (isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0) or (
                    isinstance(module, nn.modules.batchnorm._BatchNorm) and not pinned):
                raise ConfigError(f"{KEY}: layer {name}.{sub} of the frozen prefix still "
                                  "changes in training (dropout or batch statistics), so its "
                                  "output is never the same twice")
