"""WaveFake (Frank & Schönherr, NeurIPS 2021 Datasets and Benchmarks) with its bona fide corpora.

Layout: the Zenodo record 5642694 (``generated_audio.zip``, see
github.com/RUB-SysSec/WaveFake README) unpacks to one folder per generator::

    <root>/generated_audio/ljspeech_melgan/LJ001-0001_gen.wav
                           ljspeech_melgan_large/ ljspeech_full_band_melgan/
                           ljspeech_multi_band_melgan/ ljspeech_hifiGAN/
                           ljspeech_parallel_wavegan/ ljspeech_waveglow/
                           jsut_multi_band_melgan/BASIC5000_0001_gen.wav  jsut_parallel_wavegan/
                           common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech/

(``<root>`` may also be ``generated_audio`` itself.) The bona fide speech is not
part of WaveFake; it comes from the corpora the generators imitate, unpacked as
their publishers distribute them:

- LJSpeech 1.1 (keithito.com/LJ-Speech-Dataset): ``LJSpeech-1.1/wavs/LJ001-0001.wav``
  and ``LJSpeech-1.1/metadata.csv`` (``id|text|normalized text``);
- JSUT 1.1 (Sonobe et al. 2017): ``jsut_ver1.1/basic5000/wav/BASIC5000_0001.wav`` and
  ``jsut_ver1.1/basic5000/transcript_utf8.txt`` (``id:text``).

The reader looks for ``LJSpeech-1.1/`` and ``jsut_ver1.1/`` inside ``<root>`` and
next to it (siblings); ``ljspeech_root=`` / ``jsut_root=`` point elsewhere. Each
language's bona fide corpus is required only when generators of that language
are read (``vocoders=`` selects generator folders by name).

How the table is filled:

- ``attack``: the generator folder name (one folder = one attack), e.g.
  ``ljspeech_melgan``; ``-`` for bona fide;
- ``speaker``: ``ljspeech`` or ``jsut`` (each corpus is one speaker; the
  Common Voice prompts are spoken in the LJSpeech voice);
- ``utt_id``: ``<folder>/<file stem>`` for generated clips,
  ``ljspeech/<id>`` / ``jsut/<id>`` for bona fide ones;
- extra columns ``source_corpus`` (ljspeech/jsut) and ``source_utt``, the id of
  the utterance a clip was generated from (``LJ001-0001``; the file stem for the
  Common Voice prompts, which have no bona fide counterpart);
- ``split``: none is published and a speaker-disjoint split is impossible (one
  speaker per language), so rows are split by ``source_utt``: a bona fide clip
  and every generated version of it share a split (seeded, default fractions
  0.7/0.1/0.2, seed 0), so no sentence is seen in training and tested on.

Bona fide rows are listed from the publishers' metadata files when present
(so a partial download shows up as missing files), else from the wav folders;
generated clips are listed from the folders (WaveFake has no metadata file):
the ``*.wav`` directly in each folder, or, if a folder has none there, every
``*.wav`` below it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora._common import (
    DEFAULT_SEED,
    check_keys_match_audio,
    grouped_split,
    missing_error,
    read_text_lines,
    require_unique,
    safe_id,
    scan_audio,
)
from cl_spoof.data.table import make_table
from cl_spoof.errors import ConfigError
from cl_spoof.labels import NO_ATTACK

NAME = "wavefake"
ORDER = 60  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("WaveFake: generated_audio/<generator>/ (ljspeech_*, jsut_*, common_voices_*)"
          " + LJSpeech-1.1/ and jsut_ver1.1/ for bona fide")
GENERATED = "generated_audio"
LJSPEECH = "LJSpeech-1.1"
JSUT = "jsut_ver1.1"
COMMON_VOICE = "common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech"
EXTRA: tuple[str, ...] = ("source_corpus", "source_utt")
_SOURCE_ID = {"ljspeech": re.compile(r"LJ\d{3}-\d{4}"), "jsut": re.compile(r"BASIC5000_\d{4}")}


def generated_dir(root: Path) -> Path:
    """The folder holding the generator folders."""
    root = Path(root)
    return root / GENERATED if (root / GENERATED).is_dir() else root


def family(folder: str) -> str | None:
    """``ljspeech``/``jsut`` for a generator folder name, ``None`` for other folders."""
    if folder.startswith("ljspeech_") or folder.startswith("common_voices_"):
        return "ljspeech"
    if folder.startswith("jsut_"):
        return "jsut"
    return None


def generator_folders(root: Path) -> list[Path]:
    """Generator folders under the generated-audio folder, sorted by name."""
    d = generated_dir(root)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and family(p.name) is not None)


def detect(root: Path) -> bool:
    """True when ``generated_audio/`` or a generator folder is there."""
    root = Path(root)
    return (root / GENERATED).is_dir() or bool(generator_folders(root))


def bonafide_root(root: Path, corpus: str, override: Path | None = None) -> Path | None:
    """The LJSpeech / JSUT root for ``corpus``: ``override`` or inside/next to ``root``."""
    if override is not None:
        return Path(override).expanduser()
    name = LJSPEECH if corpus == "ljspeech" else JSUT
    root = Path(root)
    for base in (root, generated_dir(root), root.parent):
        if (base / name).is_dir():
            return base / name
    return None


def _bona_folder(corpus_root: Path, corpus: str) -> Path:
    return corpus_root / "wavs" if corpus == "ljspeech" else corpus_root / "basic5000" / "wav"


def _selected(root: Path, vocoders: Sequence[str] | None) -> list[Path]:
    folders = generator_folders(root)
    if vocoders is None:
        return folders
    by_name = {p.name: p for p in folders}
    unknown = [v for v in vocoders if v not in by_name]
    if unknown:
        raise ConfigError(f"vocoders: no generator folder(s) {unknown} in {generated_dir(root)};"
                          f" found {', '.join(by_name) or 'none'}")
    return [by_name[v] for v in vocoders]


def missing(root: Path, vocoders: Sequence[str] | None = None, ljspeech_root: Path | None = None,
            jsut_root: Path | None = None) -> list[str]:
    """Absent parts: generator folders, or the bona fide corpus of a language read."""
    root = Path(root)
    folders = _selected(root, vocoders)
    if not folders:
        return [f"generator folders (ljspeech_*, jsut_*) in {generated_dir(root)} (unpack"
                " generated_audio.zip from zenodo.org/record/5642694)"]
    out = []
    overrides = {"ljspeech": ljspeech_root, "jsut": jsut_root}
    for corpus in sorted({c for c in (family(p.name) for p in folders) if c is not None}):
        found = bonafide_root(root, corpus, overrides[corpus])
        name = LJSPEECH if corpus == "ljspeech" else JSUT
        gens = ", ".join(p.name for p in folders if family(p.name) == corpus)
        if found is None:
            out.append(f"the bona fide corpus {name}/ in or next to {root} for {gens} (or pass"
                       f" {corpus}_root=, or leave those generators out with vocoders=)")
        elif not _bona_folder(found, corpus).is_dir():
            out.append(f"{_bona_folder(found, corpus)} (the bona fide {name} audio)")
    return out


def _bona_ids(corpus_root: Path, corpus: str) -> list[str]:
    """Bona fide utterance ids from the corpus metadata, else from the wav folder."""
    if corpus == "ljspeech":
        meta, sep = corpus_root / "metadata.csv", "|"
    else:
        meta, sep = corpus_root / "basic5000" / "transcript_utf8.txt", ":"
    wav_dir = _bona_folder(corpus_root, corpus)
    found = scan_audio([wav_dir], (".wav",))
    if not meta.is_file():
        return sorted(found)
    ids = [ln.split(sep, 1)[0].strip() for ln in read_text_lines(meta, "transcript")
           if ln.strip()]
    require_unique(ids, meta)
    check_keys_match_audio(meta, ids, found, str(wav_dir))
    return ids


def _generated_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.wav"))
    return files if files else sorted(folder.rglob("*.wav"))


def _source_utt(stem: str, corpus: str) -> str:
    m = _SOURCE_ID[corpus].search(stem)
    return m.group(0) if m else stem


def read(root: Path, *, vocoders: Sequence[str] | None = None,
         ljspeech_root: Path | None = None, jsut_root: Path | None = None,
         fractions: Mapping[str, float] | None = None, seed: int = DEFAULT_SEED
         ) -> pd.DataFrame:
    """The utterance table (split by source utterance; see the module docstring)."""
    root = Path(root).expanduser()
    gaps = missing(root, vocoders, ljspeech_root, jsut_root)
    if gaps:
        raise missing_error(NAME, root, gaps)
    folders = _selected(root, vocoders)
    overrides = {"ljspeech": ljspeech_root, "jsut": jsut_root}
    rows: list[dict[str, str]] = []
    corpora = sorted({c for c in (family(p.name) for p in folders) if c is not None})
    for corpus in corpora:
        croot = bonafide_root(root, corpus, overrides[corpus])
        assert croot is not None
        wav_dir = _bona_folder(croot, corpus)
        for uid in _bona_ids(croot, corpus):
            rows.append({"utt_id": f"{corpus}/{safe_id(uid)}", "path": str(wav_dir / f"{uid}.wav"),
                         "label": "bonafide", "attack": NO_ATTACK, "speaker": corpus,
                         "split": "", "source_corpus": corpus, "source_utt": uid})
    for folder in folders:
        fam = family(folder.name)
        assert fam is not None
        corpus = fam
        for f in _generated_files(folder):
            rel = f.relative_to(folder).with_suffix("").as_posix()
            rows.append({"utt_id": f"{folder.name}/{safe_id(rel)}", "path": str(f),
                         "label": "spoof", "attack": folder.name, "speaker": corpus, "split": "",
                         "source_corpus": corpus, "source_utt": _source_utt(f.stem, corpus)})
    require_unique([r["utt_id"] for r in rows], generated_dir(root))
    table = make_table(rows, extra=EXTRA)
    table["split"] = grouped_split(table["source_utt"].tolist(), fractions, seed)
    return table
