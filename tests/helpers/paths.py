"""Where the tests find the repository and the optional development data beside it."""

from __future__ import annotations

from pathlib import Path

#: The repository root (the folder holding ``cl_spoof/``, ``configs/`` and ``tests/``).
ROOT = Path(__file__).resolve().parents[2]
#: Real data of the development checkout, next to the repository; absent in a clean clone.
SHARED = ROOT.parent / "shared" / "data"
LA_SAMPLE = SHARED / "asvspoof2019_la_sample"
