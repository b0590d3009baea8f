"""Infrastructure, kept in one place and passed in: processes (:class:`RunContext`),
devices and seeds, checkpoint files, atomic writes, locks and all-or-nothing folders,
user-given names, escaped output fields and the user cache folder.

``RunContext`` is imported on first use, so light modules (the config) can use
``infra.names`` without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["RunContext"]


def __getattr__(name: str) -> Any:
    if name == "RunContext":
        from cl_spoof.infra.context import RunContext

        return RunContext
    raise AttributeError(f"module 'cl_spoof.infra' has no attribute {name!r}")
