"""Per-user folders (cache) used when the user names none."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$CL_SPOOF_CACHE_DIR``, else ``$XDG_CACHE_HOME/cl-spoof``, else ``~/.cache/cl-spoof``."""
    env = os.environ.get("CL_SPOOF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cl-spoof"
