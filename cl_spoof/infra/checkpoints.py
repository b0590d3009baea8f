"""Checkpoint files: a plain dict of tensors and primitives, written atomically.

Loadable with ``torch.load(path, weights_only=True)`` (no pickled Python objects),
so a checkpoint from an untrusted source cannot run code. Kept free of Avalanche
imports so scoring starts fast.

Every checkpoint carries the SHA-256 of its content (``content_digest``: every key,
value and tensor byte, :func:`content_digest`), computed when it is written and
verified on every load: a flipped bit anywhere in a weight, a key or a number is a
named error, never a silently different model. (Checkpoints written before the digest
existed have none and are read as they are.)
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.files import atomic_path

#: Value of every cl-spoof checkpoint's ``format`` key.
CHECKPOINT_FORMAT = "cl-spoof-checkpoint/1"
#: The key holding the digest of the rest of the checkpoint.
DIGEST_KEY = "content_digest"


def _feed(h: Any, value: Any) -> None:
    """Add ``value`` to the hash ``h``, with its type, so that no two different contents
    hash alike (a list and a tuple are both a sequence: ``torch.load`` may return either)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, Mapping):
        h.update(f"M{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif value is None or isinstance(value, bool | int | float | str | bytes):
        text = repr(value).encode("utf-8", "surrogatepass")
        h.update(f"{type(value).__name__}{len(text)}:".encode())
        h.update(text)
    elif isinstance(value, torch.dtype | torch.device | torch.Size):
        h.update(f"{type(value).__name__}:{value}".encode())
    else:
        raise TypeError(f"a checkpoint holds {type(value).__name__}, which has no digest")


def content_digest(payload: Mapping) -> str:
    """SHA-256 of every key and value of ``payload`` but :data:`DIGEST_KEY`."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST_KEY})
    return h.hexdigest()


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to a temporary file, then move into place (never truncated), with
    the digest of its content (:func:`content_digest`).

    Serialised in memory first, so a full disk is an ordinary :class:`OSError` (named
    by :func:`atomic_path`), not one of torch's internal writer errors.
    """
    buffer = io.BytesIO()
    torch.save({**payload, DIGEST_KEY: content_digest(payload)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


class CheckpointError(CLSpoofError):
    """A file that is not a usable cl-spoof checkpoint."""


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The first sentence of ``exc``'s message (torch's messages can be pages long)."""
    text = str(exc).strip().splitlines()
    line = text[0].split(". ")[0].rstrip(".") if text else ""
    line = line if len(line) <= limit else line[: limit - 3] + "..."
    return line or type(exc).__name__


def _listed(names: Sequence[str], limit: int) -> str:
    """The first ``limit`` of ``names``, and how many there are when that is not all."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def state_mismatch(expected: Mapping[str, torch.Tensor], got: Mapping[str, Any]) -> str | None:
    """How the state dict ``got`` (from a file) fails to fit ``expected`` (a model's), in
    one line: the names it lacks, those it has in excess, its values that are no tensors
    and its tensors of another shape, each counted with the first few named; ``None``
    when it fits."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    not_tensors = [k for k in expected if k in got and not isinstance(got[k], torch.Tensor)]
    shapes = [f"{k} {tuple(got[k].shape)} in the file, {tuple(ref.shape)} in the model"
              for k, ref in expected.items()
              if isinstance(got.get(k), torch.Tensor) and got[k].shape != ref.shape]
    parts = [f"{len(names)} {what} ({_listed(names, limit)})" for what, names, limit in (
        ("missing", missing, 3), ("unexpected", unexpected, 3),
        ("not a tensor", not_tensors, 3), ("of another shape", shapes, 2)) if names]
    return "; ".join(parts) or None


def non_finite(state: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of ``state`` holding NaN or Inf (weights no
    model should start from)."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor)
            and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_weights_only(path: Path, what: str, where: str | None = None,
                      error: type[CLSpoofError] = CheckpointError, objects_hint: str = "") -> Any:
    """What the PyTorch file ``path`` holds, loaded onto the CPU with
    ``torch.load(weights_only=True)``: no code from the file is ever run.

    Every way it fails is one ``error`` line starting with ``where`` (default: the path)
    and calling the file ``what`` (``checkpoint``, ``weights file``): missing, not a
    file, unreadable, not a PyTorch file, truncated or corrupt, or holding Python
    objects (then ``objects_hint`` is added: what to save instead).
    """
    where = str(path) if where is None else where
    if not path.is_file():
        raise error(f"{where}: {what} not found" if not path.exists() else
                    f"{where}: not a file (a {what} was expected)")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise error(f"{where}: cannot read the {what} ({exc.strerror})") from None
    unreadable = f"{where}: not a readable {what}: not a PyTorch file, or truncated or corrupt"
    if not is_zip:  # torch.save writes a zip archive; anything else is damaged or foreign
        raise error(f"{unreadable} (it is no zip archive, as torch.save writes)")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for foreign, truncated or corrupt files
        if "weights only load failed" in str(exc).lower():
            raise error(f"{where}: not a readable {what}: it holds Python objects other than "
                        "tensors and plain data, which are never loaded "
                        f"(torch.load(weights_only=True)){objects_hint}") from None
        raise error(f"{unreadable} ({type(exc).__name__}: {_first_line(exc)})") from None


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict safely (:func:`load_weights_only`) onto the CPU.

    Raises :class:`CheckpointError` naming the file when it is missing, not a PyTorch
    file, truncated or corrupt, holds Python objects, or is not a cl-spoof checkpoint.
    """
    path = Path(path).expanduser()
    ckpt = load_weights_only(path, "checkpoint")
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path}: not a cl-spoof checkpoint (no 'format' key; expected "
                              f"a checkpoints/stage_<k>.pt file written by 'cl-spoof run')")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {ckpt['format']!r} "
                              f"(this version reads {CHECKPOINT_FORMAT!r})")
    if DIGEST_KEY in ckpt:
        try:
            same = ckpt[DIGEST_KEY] == content_digest(ckpt)
        except TypeError:
            same = False
        if not same:
            raise CheckpointError(f"{path}: damaged checkpoint: its content does not match the "
                                  "digest stored when it was written; use an earlier stage's "
                                  "checkpoint, a backup, or train again")
        del ckpt[DIGEST_KEY]
    return ckpt


def load_model_state(model: nn.Module, state: Any, path: str | Path, what: str) -> None:
    """``model.load_state_dict(state)`` with an error naming the file and ``what`` model."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: damaged checkpoint: model_state is not a state dict")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"{path}: damaged checkpoint: {len(bad)} weight tensor(s) hold "
                              f"NaN or Inf (e.g. {bad[0]}); use an earlier stage's checkpoint "
                              "or train again")
    problem = state_mismatch(model.state_dict(), state)
    if problem is None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            problem = _first_line(exc)
    if problem is not None:
        raise CheckpointError(f"{path}: the model state does not fit {what}: {problem}")
