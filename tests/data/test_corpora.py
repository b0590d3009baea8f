"""Corpus readers on tiny fixtures in each publisher's exact layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from cl_spoof.data.checks import check_table, metadata_problems
from cl_spoof.data.corpora import (
    READERS,
    asvspoof5,
    asvspoof2019,
    asvspoof2021_df,
    asvspoof2021_la,
    detect_layout,
    fake_or_real,
    in_the_wild,
    prefix_utt_ids,
    read_corpus,
    wavefake,
)
from cl_spoof.data.corpora._common import grouped_split
from cl_spoof.data.table import COLUMNS, extra_columns, make_table
from cl_spoof.errors import ConfigError, DataError

SR = 16_000


def clip(path: Path, seed: int = 0) -> Path:
    """A 50 ms noise clip (FLAC or WAV by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal(SR // 20).astype(np.float32)
    sf.write(path, wave, SR)
    return path


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------- make_table extras


def test_make_table_keeps_named_extra_columns_only_when_asked() -> None:
    rows = [{"utt_id": "a", "path": "a.wav", "label": "spoof", "attack": "A1", "speaker": "s",
             "split": "train", "codec": "gsm", "junk": 1}]
    assert list(make_table(rows).columns) == list(COLUMNS)  # old behaviour unchanged
    t = make_table(rows, extra=["codec"])
    assert list(t.columns) == [*COLUMNS, "codec"] and t.loc[0, "codec"] == "gsm"
    t = make_table(rows, extra="all")
    assert extra_columns(t) == ["codec", "junk"] and t.loc[0, "junk"] == "1"
    with pytest.raises(ValueError, match="extra columns"):
        make_table(rows, extra=["subset"])
    both = make_table(pd.concat([t, make_table(rows)]), extra="all")
    assert both["codec"].tolist() == ["gsm", ""]


# -------------------------------------------------------------------- ASVspoof 2021 LA

LA_KEYS = [
    "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval",
    "LA_0009 LA_E_6866159 none loc_tx - bonafide notrim progress",
    "LA_0012 LA_E_5464494 g722 sin_tx A19 spoof notrim hidden",
    "LA_0012 LA_E_1000001 opus mad_tx - bonafide notrim eval",
]


def make_la2021(root: Path, keys: list[str] = LA_KEYS, audio: bool = True,
                key_file: bool = True) -> Path:
    if audio:
        for line in keys:
            clip(root / "ASVspoof2021_LA_eval" / "flac" / f"{line.split()[1]}.flac")
    if key_file:
        write(root / "keys" / "LA" / "CM" / "trial_metadata.txt", keys)
    return root


def test_asvspoof2021_la_table(tmp_path: Path) -> None:
    root = make_la2021(tmp_path)
    assert asvspoof2021_la.detect(root) and detect_layout(root) is asvspoof2021_la
    t = read_corpus(root)
    assert list(t.columns) == [*COLUMNS, "codec", "transmission", "trim", "subset"]
    assert t.utt_id.tolist() == [ln.split()[1] for ln in LA_KEYS]
    assert t.label.tolist() == ["spoof", "bonafide", "spoof", "bonafide"]
    assert t.attack.tolist() == ["A07", "-", "A19", "-"]
    assert t.speaker.tolist() == ["LA_0009", "LA_0009", "LA_0012", "LA_0012"]
    assert set(t.split) == {"eval"}
    assert t.codec.tolist() == ["alaw", "none", "g722", "opus"]
    assert t.transmission.tolist() == ["ita_tx", "loc_tx", "sin_tx", "mad_tx"]
    assert t.subset.tolist() == ["eval", "progress", "hidden", "eval"]
    assert all(Path(p).is_file() for p in t.path)
    assert metadata_problems(t) == []
    assert check_table(t).ok
    only_eval = read_corpus(root, subsets=["eval"])
    assert only_eval.utt_id.tolist() == ["LA_E_9332881", "LA_E_1000001"]


def test_asvspoof2021_resplit_is_speaker_disjoint_and_seeded(tmp_path: Path) -> None:
    root = make_la2021(tmp_path)
    t = read_corpus(root, fractions={"train": 0.5, "eval": 0.5}, seed=3)
    assert set(t.split) == {"train", "eval"}
    assert t.groupby("speaker").split.nunique().max() == 1
    again = read_corpus(root, fractions={"train": 0.5, "eval": 0.5}, seed=3)
    assert t.split.tolist() == again.split.tolist()


def test_asvspoof2021_la_half_present_and_mismatch(tmp_path: Path) -> None:
    keys_only = make_la2021(tmp_path / "k", audio=False)
    with pytest.raises(DataError, match=r"incomplete; missing: .*ASVspoof2021_LA_eval/flac/"):
        detect_layout(keys_only)
    audio_only = make_la2021(tmp_path / "a", key_file=False)
    with pytest.raises(DataError, match=r"missing: the key file keys/LA/CM/trial_metadata.txt"
                                         r" or LA-keys-full/.*LA-keys-full.tar.gz"):
        read_corpus(audio_only)
    # keys of other trials than the audio folder holds
    other = make_la2021(tmp_path / "o", key_file=False)
    write(other / "keys" / "LA" / "CM" / "trial_metadata.txt",
          ["LA_0001 LA_E_7777777 alaw ita_tx A07 spoof notrim eval"])
    with pytest.raises(DataError, match=r"trial_metadata.txt: does not match the audio in .*"
                                        r"none of its 1 trials \(e.g. LA_E_7777777\)"):
        read_corpus(other)
    # the DF key file unpacked where the LA one belongs
    df_keys = make_la2021(tmp_path / "d", key_file=False)
    write(df_keys / "keys" / "LA" / "CM" / "trial_metadata.txt",
          ["LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress"])
    with pytest.raises(DataError, match=r"trial_metadata.txt:1: trial 'DF_E_2000011' is not an"
                                        r" ASVspoof 2021 LA trial"):
        read_corpus(df_keys)
    bad = make_la2021(tmp_path / "b", keys=[*LA_KEYS, "LA_0009 LA_E_1 alaw A07 spoof notrim eval"],
                      audio=False)
    clip(bad / "ASVspoof2021_LA_eval" / "flac" / "LA_E_1.flac")
    with pytest.raises(DataError, match=r"trial_metadata.txt:5: expected 8 fields"):
        read_corpus(bad)


def test_partial_download_keeps_rows_for_the_data_check(tmp_path: Path) -> None:
    root = make_la2021(tmp_path)
    (root / "ASVspoof2021_LA_eval" / "flac" / "LA_E_5464494.flac").unlink()
    t = read_corpus(root)
    assert len(t) == 4
    report = check_table(t, allow_missing=True, check_audio=False)
    assert report.ok and report.dropped_missing == 1 and len(report.table) == 3


# -------------------------------------------------------------------- ASVspoof 2021 DF

DF_KEYS = [
    "LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder"
    " - - - -",
    "TEF2 DF_E_2000013 low_mp3 vcc2020 Task1-team20 spoof notrim eval"
    " neural_vocoder_autoregressive Task1 team20 F-F eng",
    "LA_0031 DF_E_2000024 high_m4a asvspoof - bonafide notrim eval bonafide - - - -",
]


def test_asvspoof2021_df_parts_and_keys_package_folder(tmp_path: Path) -> None:
    root = tmp_path
    # each part unpacked into its own folder; the third trial is not downloaded
    clip(root / "ASVspoof2021_DF_eval_part00" / "ASVspoof2021_DF_eval" / "flac"
         / "DF_E_2000011.flac")
    clip(root / "ASVspoof2021_DF_eval_part01" / "ASVspoof2021_DF_eval" / "flac"
         / "DF_E_2000013.flac")
    write(root / "DF-keys-full" / "keys" / "DF" / "CM" / "trial_metadata.txt", DF_KEYS)
    assert detect_layout(root) is asvspoof2021_df
    t = read_corpus(root)
    assert list(t.columns) == [*COLUMNS, *asvspoof2021_df.TRACK.extra]
    assert t.attack.tolist() == ["A14", "Task1-team20", "-"]
    assert t.source_corpus.tolist() == ["asvspoof", "vcc2020", "asvspoof"]
    assert t.vocoder.tolist() == ["traditional_vocoder", "neural_vocoder_autoregressive",
                                  "bonafide"]
    assert t.language.tolist() == ["-", "eng", "-"]
    assert t.codec.tolist() == ["nocodec", "low_mp3", "high_m4a"]
    assert "part00" in t.path[0] and "part01" in t.path[1]
    assert not Path(t.path[2]).exists()
    report = check_table(t, allow_missing=True, check_audio=False)
    assert report.dropped_missing == 1 and report.ok


def test_asvspoof2021_df_refuses_la_keys(tmp_path: Path) -> None:
    clip(tmp_path / "ASVspoof2021_DF_eval" / "flac" / "DF_E_2000011.flac")
    write(tmp_path / "keys" / "DF" / "CM" / "trial_metadata.txt",
          ["LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval"])
    with pytest.raises(DataError, match=r"expected 13 fields"):
        read_corpus(tmp_path)


# --------------------------------------------------------------------------- ASVspoof 5

A5_TRAIN = ["T_4850 T_0000000000 F - - - AC3 A05 spoof -",
            "T_3734 T_0000000011 F - - - - bonafide bonafide -",
            "T_4850 T_0000000012 F - - - AC1 A01 spoof -"]
A5_DEV = ["D_0062 D_0000000001 F - - - AC1 A11 spoof -",
          "D_0461 D_0000000190 M - - - - bonafide bonafide -"]
A5_EVAL = ["E_4608 E_0000000024 M C11 4 E_0004890277 AC1 A24 spoof -",
           "E_2040 E_0000000034 M - 0 - - bonafide bonafide -"]


def make_asvspoof5(root: Path, eval_audio: bool = False) -> Path:
    proto = root / "ASVspoof5_protocols"
    write(proto / "ASVspoof5.train.tsv", A5_TRAIN)
    write(proto / "ASVspoof5.dev.track_1.tsv", A5_DEV)
    write(proto / "ASVspoof5.eval.track_1.tsv", A5_EVAL)
    for lines, folder in ((A5_TRAIN, "flac_T"), (A5_DEV, "flac_D")) + (
            ((A5_EVAL, "flac_E_eval"),) if eval_audio else ()):
        for ln in lines:
            clip(root / folder / f"{ln.split()[1]}.flac")
    return root


def test_asvspoof5_table_reads_partitions_with_audio(tmp_path: Path) -> None:
    root = make_asvspoof5(tmp_path)
    assert detect_layout(root) is asvspoof5
    t = read_corpus(root)
    assert list(t.columns) == [*COLUMNS, "gender", "codec", "codec_q", "codec_seed",
                               "attack_tag"]
    assert t.split.tolist() == ["train"] * 3 + ["dev"] * 2  # no eval audio: eval not read
    assert t.label.tolist() == ["spoof", "bonafide", "spoof", "spoof", "bonafide"]
    assert t.attack.tolist() == ["A05", "-", "A01", "A11", "-"]
    assert t.attack_tag.tolist() == ["AC3", "-", "AC1", "AC1", "-"]
    assert t.speaker.tolist()[:2] == ["T_4850", "T_3734"]
    assert all(Path(p).is_file() for p in t.path) and metadata_problems(t) == []
    with pytest.raises(DataError, match=r"missing: flac_E_eval/ \(the eval audio\)"):
        read_corpus(root, splits=["eval"])
    with pytest.raises(ConfigError, match=r"splits: expected a list of train, dev, eval"):
        read_corpus(root, splits=["test"])
    full = read_corpus(make_asvspoof5(tmp_path / "full", eval_audio=True))
    ev = full[full.split == "eval"]
    assert ev.codec.tolist() == ["C11", "-"] and ev.codec_q.tolist() == ["4", "0"]
    assert ev.codec_seed.tolist() == ["E_0004890277", "-"]
    assert ev.attack.tolist() == ["A24", "-"]


def test_asvspoof5_bad_input(tmp_path: Path) -> None:
    audio_only = tmp_path / "a"
    clip(audio_only / "flac_T" / "T_0000000000.flac")
    with pytest.raises(DataError, match=r"missing: ASVspoof5.train.tsv"):
        detect_layout(audio_only)
    protos_only = tmp_path / "p"
    write(protos_only / "ASVspoof5.train.tsv", A5_TRAIN)
    with pytest.raises(DataError, match=r"missing: the audio folders flac_T/, flac_D/"):
        read_corpus(protos_only)
    swapped = make_asvspoof5(tmp_path / "s")
    write(swapped / "ASVspoof5_protocols" / "ASVspoof5.dev.track_1.tsv", A5_TRAIN)
    with pytest.raises(DataError, match=r"dev.track_1.tsv:1: trial 'T_0000000000' is not a dev"
                                        r" trial"):
        read_corpus(swapped)
    other = make_asvspoof5(tmp_path / "o")
    write(other / "ASVspoof5_protocols" / "ASVspoof5.train.tsv",
          ["T_0001 T_0000009999 M - - - AC1 A02 spoof -"])
    with pytest.raises(DataError, match=r"train.tsv: does not match the audio in .*flac_T"):
        read_corpus(other)
    short = make_asvspoof5(tmp_path / "f")
    write(short / "ASVspoof5_protocols" / "ASVspoof5.train.tsv",
          ["T_4850 T_0000000000 F - - AC3 A05 spoof -"])
    with pytest.raises(DataError, match=r"train.tsv:1: expected 10 fields 'SPEAKER_ID"):
        read_corpus(short)


# -------------------------------------------------------------------------- In-the-Wild

ITW_META = ["file,speaker,label", "0.wav,Alec Guinness,spoof", "1.wav,Alec Guinness,bona-fide",
            "2.wav,Barack Obama,spoof", "3.wav,Barack Obama,bona-fide",
            "4.wav,Christopher Hitchens,bona-fide", "5.wav,Christopher Hitchens,spoof",
            "6.wav,Ayn Rand,spoof", "7.wav,Ayn Rand,bona-fide"]


def make_itw(root: Path, meta: list[str] = ITW_META, audio: bool = True) -> Path:
    d = root / "release_in_the_wild"
    write(d / "meta.csv", meta)
    if audio:
        for ln in meta[1:]:
            clip(d / ln.split(",")[0])
    return root


def test_in_the_wild_table_and_speaker_disjoint_split(tmp_path: Path) -> None:
    root = make_itw(tmp_path)
    assert detect_layout(root) is in_the_wild
    assert detect_layout(root / "release_in_the_wild") is in_the_wild
    t = read_corpus(root)
    assert t.utt_id.tolist() == [str(i) for i in range(8)]
    assert t.label.tolist() == ["spoof", "bonafide"] * 2 + ["bonafide", "spoof"] + [
        "spoof", "bonafide"]
    assert set(t.loc[t.label == "spoof", "attack"]) == {"in_the_wild"}
    assert set(t.loc[t.label == "bonafide", "attack"]) == {"-"}
    assert t.speaker[0] == "Alec Guinness"
    assert t.groupby("speaker").split.nunique().max() == 1  # speaker-disjoint
    assert set(t.split) <= {"train", "dev", "eval"} and "train" in set(t.split)
    assert read_corpus(root).split.tolist() == t.split.tolist()  # deterministic
    assert metadata_problems(t) == [] and check_table(t).ok
    test_only = read_corpus(root, fractions={"eval": 1.0}, attack="itw")
    assert set(test_only.split) == {"eval"}
    assert set(test_only.loc[test_only.label == "spoof", "attack"]) == {"itw"}


def test_in_the_wild_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing: the .wav files in .*release_in_the_wild"):
        detect_layout(make_itw(tmp_path / "m", audio=False))
    bad = make_itw(tmp_path / "b", meta=[*ITW_META[:3], "9.wav,Ayn Rand,fake"])
    with pytest.raises(DataError, match=r"meta.csv:4: unknown label 'fake'"):
        read_corpus(bad)
    hdr = make_itw(tmp_path / "h", meta=["path,label", "0.wav,spoof"])
    with pytest.raises(DataError, match=r"meta.csv: expected the header file,speaker,label"):
        read_corpus(hdr)
    with pytest.raises(ConfigError, match=r"version: not an option of the in_the_wild reader;"
                                          r" its options are attack, fractions, seed"):
        read_corpus(make_itw(tmp_path / "o"), version="x")
    with pytest.raises(ConfigError, match=r"fractions must sum to 1"):
        read_corpus(make_itw(tmp_path / "f"), fractions={"train": 0.5, "eval": 0.2})


# ----------------------------------------------------------------------------- WaveFake


def make_wavefake(base: Path, jsut: bool = True) -> Path:
    root = base / "WaveFake"
    gen = root / "generated_audio"
    for i in (1, 2, 3):
        clip(gen / "ljspeech_melgan" / f"LJ001-000{i}_gen.wav", i)
        clip(gen / "ljspeech_waveglow" / f"LJ001-000{i}.wav", 10 + i)
    clip(gen / "common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech" / "gen_0.wav")
    clip(gen / "jsut_parallel_wavegan" / "BASIC5000_0001_gen.wav")
    lj = base / "LJSpeech-1.1"  # next to the WaveFake root
    write(lj / "metadata.csv", [f'LJ001-000{i}|Printing, "in the only sense"|x' for i in (1, 2, 3)])
    for i in (1, 2, 3):
        clip(lj / "wavs" / f"LJ001-000{i}.wav", 20 + i)
    if jsut:  # inside the WaveFake root
        write(root / "jsut_ver1.1" / "basic5000" / "transcript_utf8.txt",
              ["BASIC5000_0001:水をマレーシアから買わなくてはならないのです。"])
        clip(root / "jsut_ver1.1" / "basic5000" / "wav" / "BASIC5000_0001.wav")
    return root


def test_wavefake_table(tmp_path: Path) -> None:
    root = make_wavefake(tmp_path)
    assert detect_layout(root) is wavefake
    t = read_corpus(root, fractions={"train": 0.5, "eval": 0.5})
    assert list(t.columns) == [*COLUMNS, "source_corpus", "source_utt"]
    spoof = t[t.label == "spoof"]
    assert sorted(set(spoof.attack)) == [
        "common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech",
        "jsut_parallel_wavegan", "ljspeech_melgan", "ljspeech_waveglow"]
    bona = t[t.label == "bonafide"]
    assert bona.utt_id.tolist() == ["jsut/BASIC5000_0001", "ljspeech/LJ001-0001",
                                    "ljspeech/LJ001-0002", "ljspeech/LJ001-0003"]
    assert set(bona.attack) == {"-"}
    assert t.set_index("utt_id").loc["ljspeech_melgan/LJ001-0002_gen", "source_utt"] == "LJ001-0002"
    assert t.set_index("utt_id").loc["jsut_parallel_wavegan/BASIC5000_0001_gen",
                                     "speaker"] == "jsut"
    # a sentence never straddles splits: the bona fide clip and its fakes share one
    assert t.groupby("source_utt").split.nunique().max() == 1
    assert len(set(t.split)) == 2
    assert t.utt_id.is_unique and metadata_problems(t) == [] and check_table(t).ok


def test_wavefake_bona_fide_roots(tmp_path: Path) -> None:
    root = make_wavefake(tmp_path, jsut=False)
    with pytest.raises(DataError, match=r"missing: the bona fide corpus jsut_ver1.1/ .* for"
                                        r" jsut_parallel_wavegan \(or pass jsut_root="):
        read_corpus(root)
    t = read_corpus(root, vocoders=["ljspeech_melgan"])
    assert set(t.attack) == {"ljspeech_melgan", "-"} and len(t) == 6
    jsut_elsewhere = make_wavefake(tmp_path / "x")
    moved = tmp_path / "jsut_copy"
    (jsut_elsewhere / "jsut_ver1.1").rename(moved)
    t = read_corpus(root, jsut_root=moved)
    assert "jsut/BASIC5000_0001" in set(t.utt_id)
    with pytest.raises(ConfigError, match=r"vocoders: no generator folder\(s\) \['hifigan'\]"):
        read_corpus(root, vocoders=["hifigan"])


# ------------------------------------------------------------------------- Fake-or-Real


def make_for(folder: Path, n: int = 2, skip: tuple[str, str] | None = None) -> Path:
    for split in ("training", "validation", "testing"):
        for cls in ("real", "fake"):
            if (split, cls) == skip:
                continue
            for i in range(n):
                clip(folder / split / cls / f"file{i}.wav_16k.wav_norm.wav", i)
    return folder


def test_fake_or_real_table(tmp_path: Path) -> None:
    make_for(tmp_path / "for-norm")
    assert detect_layout(tmp_path) is fake_or_real
    t = read_corpus(tmp_path)
    assert list(t.columns) == [*COLUMNS, "version"]
    assert t.groupby(["split", "label"]).size().to_dict() == {
        (s, lab): 2 for s in ("train", "dev", "eval") for lab in ("bonafide", "spoof")}
    assert set(t.loc[t.label == "spoof", "attack"]) == {"for-norm"}
    assert set(t.speaker) == {""}
    assert "for-norm/training/real/file0.wav_16k.wav_norm" in set(t.utt_id)
    assert t.utt_id.is_unique and metadata_problems(t) == [] and check_table(t).ok
    # the version folder itself, and the Kaggle mirror's nesting
    assert len(read_corpus(tmp_path / "for-norm")) == 12
    kaggle = tmp_path / "kaggle"
    make_for(kaggle / "for-2sec" / "for-2seconds", n=1)
    k = read_corpus(kaggle)
    assert set(k.version) == {"for-2sec"} and len(k) == 6


def test_fake_or_real_versions_and_half_present(tmp_path: Path) -> None:
    make_for(tmp_path / "for-norm")
    make_for(tmp_path / "for-rerecorded", n=1)
    with pytest.raises(DataError, match=r"several FoR versions \(for-norm, for-rerec\); choose"
                                        r" one with the reader option version"):
        read_corpus(tmp_path)
    t = read_corpus(tmp_path, version="for-rerec")
    assert len(t) == 6 and set(t.version) == {"for-rerec"}
    half = make_for(tmp_path / "h" / "for-2seconds", skip=("validation", "fake"))
    with pytest.raises(DataError, match=r"missing: for-2sec: .*validation/fake/"):
        detect_layout(half.parent)


# ------------------------------------------------------------------ ASVspoof 2019 adapter


def test_asvspoof2019_adapter(tmp_path: Path) -> None:
    proto = tmp_path / "ASVspoof2019_LA_cm_protocols"
    write(proto / "ASVspoof2019.LA.cm.train.trn.txt", ["LA_0079 LA_T_1 - - bonafide"])
    write(proto / "ASVspoof2019.LA.cm.dev.trl.txt", ["LA_0069 LA_D_1 - A01 spoof"])
    write(proto / "ASVspoof2019.LA.cm.eval.trl.txt", ["LA_0039 LA_E_1 - A07 spoof"])
    with pytest.raises(DataError, match=r"asvspoof2019_la layout but is incomplete; missing:"
                                        r" ASVspoof2019_LA_\{train,dev,eval\}/flac/"):
        detect_layout(tmp_path)
    clip(tmp_path / "ASVspoof2019_LA_train" / "flac" / "LA_T_1.flac")
    assert detect_layout(tmp_path) is asvspoof2019
    t = read_corpus(tmp_path)
    assert t.split.tolist() == ["train", "dev", "eval"]
    assert t.attack.tolist() == ["-", "A01", "A07"]


# --------------------------------------------------------------------------- registry


def test_every_reader_has_the_interface() -> None:
    names = [m.NAME for m in READERS]
    assert len(set(names)) == len(names) == 7
    for m in READERS:
        assert isinstance(m.LAYOUT, str) and "\n" not in m.LAYOUT
        for fn in ("detect", "missing", "read"):
            assert callable(getattr(m, fn))


def test_no_layout_lists_every_layout(tmp_path: Path) -> None:
    (tmp_path / "some_audio").mkdir()
    with pytest.raises(DataError) as err:
        detect_layout(tmp_path)
    msg = str(err.value)
    assert "no known corpus layout" in msg
    for m in READERS:
        assert f"{m.NAME}: {m.LAYOUT}" in msg
    with pytest.raises(DataError, match="not a folder"):
        detect_layout(tmp_path / "nope")


def test_several_layouts_and_explicit_layout(tmp_path: Path) -> None:
    make_la2021(tmp_path)
    make_itw(tmp_path)
    with pytest.raises(DataError, match=r"matches several corpus layouts \(asvspoof2021_la,"
                                        r" in_the_wild\)"):
        detect_layout(tmp_path)
    assert len(read_corpus(tmp_path, layout="asvspoof2021_la")) == 4
    with pytest.raises(ConfigError, match=r"unknown corpus layout 'la2021'"):
        read_corpus(tmp_path, layout="la2021")


def test_prefix_utt_ids_makes_sources_unique(tmp_path: Path) -> None:
    itw = read_corpus(make_itw(tmp_path / "i"))
    la = read_corpus(make_la2021(tmp_path / "l"))
    both = make_table(pd.concat([prefix_utt_ids(itw, "itw"), prefix_utt_ids(la, "la21")]),
                      extra="all")
    assert both.utt_id.is_unique and both.utt_id[0] == "itw/0"
    assert both.loc[both.utt_id == "la21/LA_E_9332881", "codec"].item() == "alaw"
    assert both.loc[both.utt_id == "itw/0", "codec"].item() == ""
    with pytest.raises(ConfigError, match="without whitespace"):
        prefix_utt_ids(itw, "in the wild")


def test_grouped_split_fractions_and_stability() -> None:
    groups = [f"g{i // 3}" for i in range(300)]  # 100 groups of 3 rows
    splits = grouped_split(groups, {"train": 0.7, "dev": 0.1, "eval": 0.2}, seed=1)
    counts = pd.Series(splits).value_counts().to_dict()
    assert abs(counts["train"] - 210) <= 3 and abs(counts["dev"] - 30) <= 3
    assert abs(counts["eval"] - 60) <= 3
    # order of rows does not matter, only groups and seed
    rev = grouped_split(groups[::-1], {"train": 0.7, "dev": 0.1, "eval": 0.2}, seed=1)
    assert rev[::-1] == splits
    assert grouped_split(groups, {"eval": 1.0}) == ["eval"] * 300
    assert grouped_split(groups, seed=2) != grouped_split(groups, seed=1)


def test_registry_reads_an_la_root_like_the_2019_reader(asvspoof2019_la: Path) -> None:
    from cl_spoof.data import read_asvspoof2019_la

    assert detect_layout(asvspoof2019_la) is asvspoof2019
    table = read_corpus(asvspoof2019_la)
    assert len(table) == 54 and set(table.split) == {"train", "dev", "eval"}
    pd.testing.assert_frame_equal(table, read_asvspoof2019_la(asvspoof2019_la))
