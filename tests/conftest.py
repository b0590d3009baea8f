"""Shared fixtures: tiny synthetic corpora, the shared ASVspoof sample, an isolated cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.corpora import make_asvspoof2019_la, make_tiny_corpus
from tests.helpers.paths import LA_SAMPLE


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> None:
    """Never touch the user's cache folder from tests."""
    monkeypatch.setenv("CL_SPOOF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def la_sample() -> Path:
    """The shared partial ASVspoof 2019 LA download (skips where ../shared is absent)."""
    if not LA_SAMPLE.is_dir():
        pytest.skip(f"shared ASVspoof 2019 LA sample not found at {LA_SAMPLE} "
                    "(only present in the project's development checkout)")
    return LA_SAMPLE


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a tiny synthetic 2-attack corpus (session-wide, read-only for tests)."""
    return make_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))


@pytest.fixture(scope="session")
def asvspoof2019_la(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic ASVspoof 2019 LA root in the publisher's layout (session-wide, read-only):
    per split 6 bona fide and 6 spoofs per attack, A01/A02 in train and dev, A07/A08 in eval,
    3 speakers per split."""
    return make_asvspoof2019_la(tmp_path_factory.mktemp("asvspoof2019_la"))
