"""The installed package holds every shipped config (usable by name) and says its version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from cl_spoof import __version__
from cl_spoof.config import shipped_configs

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_every_config(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building writes build/ and egg-info next to the sources
    shutil.copytree(REPO / "cl_spoof", src / "cl_spoof",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("cl_spoof-*.whl"))
    assert wheel.name.startswith(f"cl_spoof-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"cl_spoof/configs/{p.name}" for p in shipped_configs().values()}
    assert len(shipped) >= 6 and shipped <= names
