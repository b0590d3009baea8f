"""Score files in the ASVspoof 2019 and ASVspoof 5 formats (higher score = more bona fide).

- **ASVspoof 2019** (what a run writes by default, ``metrics.score_format:
  asvspoof2019``, and the 2019/2021 evaluation scripts read with ``np.genfromtxt``):
  one trial per line,
  ``UTT_ID ATTACK KEY SCORE`` separated by single spaces, attack ``-`` for bona
  fide, key ``bonafide``/``spoof``, score with 6 decimals.
- **ASVspoof 5** (Track 1 submission format, read by the organisers'
  ``evaluation-package/util.py`` with ``pd.read_csv(sep='\\t', header=0)``): a
  tab-separated file with the header ``filename<TAB>cm-score`` and one
  ``UTT_ID<TAB>SCORE`` line per trial; the score is written losslessly
  (Python ``repr``). The matching key file for ``evaluation.py --cm_keys`` has
  the header ``filename<TAB>cm-label`` (:func:`write_asvspoof5_keys`).

Every field must be free of whitespace (a space, tab or newline would shift the
columns of these formats), an ASVspoof 5 id free of ``"`` (pandas would start a quoted
field), and every score finite; otherwise :class:`DataError` names the trial, rather
than writing a file the official tools misread. Read back, every id comes back as
written (``NA`` and ``null`` are ids, not missing values).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cl_spoof.errors import ConfigError, DataError
from cl_spoof.infra.files import atomic_write_text
from cl_spoof.infra.formats import FILE_NAME_ERRORS

ASVSPOOF5_SCORE_HEADER: tuple[str, str] = ("filename", "cm-score")
ASVSPOOF5_KEY_HEADER: tuple[str, str] = ("filename", "cm-label")
KEYS: tuple[str, str] = ("bonafide", "spoof")


def _require(scores: pd.DataFrame, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; has {list(scores.columns)}")


#: Characters a field may not hold, beyond white space, per format: the ASVspoof 5 tools
#: read the file with pandas, which takes a ``"`` for the start of a quoted field.
FORBIDDEN: dict[str, str] = {"asvspoof2019": "", "asvspoof5": '"'}


def field_problem(text: str, fmt: str = "asvspoof2019") -> str | None:
    """Why ``text`` cannot be a field of a score file in format ``fmt``, else None."""
    if not text or any(c.isspace() for c in text):
        return "is empty or contains whitespace"
    bad = sorted({c for c in text if c in FORBIDDEN.get(fmt, "")})
    if bad:
        return f"contains {' '.join(bad)}, which the {fmt} tools read as markup"
    return None


def _field(value: object, what: str, utt: object, fmt: str = "asvspoof2019") -> str:
    text = str(value)
    problem = field_problem(text, fmt)
    if problem is not None:
        raise DataError(f"trial {str(utt)!r}: {what} {text!r} {problem}, which would break "
                        "the columns of the score file; rename it")
    return text


def _score(value: object, utt: object) -> float:
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"trial {str(utt)!r}: score {value!r} is not a number") from None
    if not math.isfinite(s):
        raise DataError(f"trial {str(utt)!r}: score {s} is not finite; the official tools"
                        " refuse NaN/inf scores")
    return s


def format_asvspoof2019_scores(scores: pd.DataFrame) -> str:
    """``UTT_ID ATTACK KEY SCORE`` lines (what a run writes by default)."""
    _require(scores, ("utt_id", "attack", "key", "score"))
    lines = []
    for utt, attack, key, score in scores[["utt_id", "attack", "key", "score"]].itertuples(
            index=False):
        u = _field(utt, "utt_id", utt)
        if str(key) not in KEYS:
            raise DataError(f"trial {u!r}: key {key!r} is not bonafide/spoof")
        lines.append(f"{u} {_field(attack, 'attack', utt)} {key} {_score(score, utt):.6f}")
    return "\n".join(lines) + "\n"


def format_asvspoof5_scores(scores: pd.DataFrame) -> str:
    """``filename<TAB>cm-score`` header and one ``UTT_ID<TAB>SCORE`` line per trial."""
    _require(scores, ("utt_id", "score"))
    lines = ["\t".join(ASVSPOOF5_SCORE_HEADER)]
    for utt, score in scores[["utt_id", "score"]].itertuples(index=False):
        lines.append(f"{_field(utt, 'utt_id', utt, 'asvspoof5')}\t{_score(score, utt)!r}")
    return "\n".join(lines) + "\n"


def format_asvspoof5_keys(scores: pd.DataFrame) -> str:
    """``filename<TAB>cm-label`` header and one ``UTT_ID<TAB>KEY`` line per trial."""
    _require(scores, ("utt_id", "key"))
    lines = ["\t".join(ASVSPOOF5_KEY_HEADER)]
    for utt, key in scores[["utt_id", "key"]].itertuples(index=False):
        if str(key) not in KEYS:
            raise DataError(f"trial {str(utt)!r}: key {key!r} is not bonafide/spoof")
        lines.append(f"{_field(utt, 'utt_id', utt, 'asvspoof5')}\t{key}")
    return "\n".join(lines) + "\n"


def write_asvspoof2019_scores(path: str | Path, scores: pd.DataFrame) -> None:
    """Write an ASVspoof 2019-format score file atomically."""
    atomic_write_text(Path(path), format_asvspoof2019_scores(scores))


def write_asvspoof5_scores(path: str | Path, scores: pd.DataFrame) -> None:
    """Write an ASVspoof 5 (Track 1) score file atomically."""
    atomic_write_text(Path(path), format_asvspoof5_scores(scores))


def write_asvspoof5_keys(path: str | Path, scores: pd.DataFrame) -> None:
    """Write the key file the ASVspoof 5 evaluation package takes with ``--cm_keys``."""
    atomic_write_text(Path(path), format_asvspoof5_keys(scores))


#: Score-file writers by format name (the values of ``metrics.score_format``).
SCORE_WRITERS: dict[str, Callable[[str | Path, pd.DataFrame], None]] = {
    "asvspoof2019": write_asvspoof2019_scores,
    "asvspoof5": write_asvspoof5_scores,
}


def write_score_file(path: str | Path, scores: pd.DataFrame, fmt: str = "asvspoof2019") -> None:
    """Write ``scores`` in format ``fmt``; :class:`ConfigError` naming the formats otherwise."""
    try:
        writer = SCORE_WRITERS[fmt]
    except KeyError:
        raise ConfigError(f"score format {fmt!r}: unknown; use {', '.join(SCORE_WRITERS)}"
                          ) from None
    writer(path, scores)


def read_asvspoof2019_scores(path: str | Path) -> pd.DataFrame:
    """Read ``UTT_ID ATTACK KEY SCORE`` lines into a frame with those four columns."""
    path = Path(path)
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors=FILE_NAME_ERRORS)
    except OSError as exc:
        raise DataError(f"{path}: cannot read score file ({exc.strerror})") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split()
        if len(f) != 4:
            raise DataError(f"{path}:{lineno}: expected 4 fields 'UTT_ID ATTACK KEY SCORE', got"
                            f" {len(f)}: {line.strip()!r}")
        try:
            score = float(f[3])
        except ValueError:
            raise DataError(f"{path}:{lineno}: score {f[3]!r} is not a number") from None
        rows.append({"utt_id": f[0], "attack": f[1], "key": f[2], "score": score})
    return pd.DataFrame(rows, columns=["utt_id", "attack", "key", "score"])


def read_asvspoof5_scores(path: str | Path) -> pd.DataFrame:
    """Read an ASVspoof 5 score file into a frame with columns ``utt_id, score``."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", header=0, dtype={"filename": str},
                         keep_default_na=False, quoting=csv.QUOTE_NONE,
                         encoding_errors=FILE_NAME_ERRORS)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable ASVspoof 5 score file ({exc})") from exc
    if list(df.columns) != list(ASVSPOOF5_SCORE_HEADER):
        raise DataError(f"{path}: expected the header {'<TAB>'.join(ASVSPOOF5_SCORE_HEADER)},"
                        f" got {list(df.columns)}")
    try:
        values = pd.to_numeric(df["cm-score"], errors="raise")
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: column cm-score holds a value that is not a number ({exc})"
                        ) from exc
    return pd.DataFrame({"utt_id": df["filename"].astype(str), "score": values})
