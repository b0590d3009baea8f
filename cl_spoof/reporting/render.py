"""Text renderings of a report: Markdown and HTML documents, terminal/Markdown tables.

``report.html`` is self-contained (inline CSS, PNGs as data URIs, nothing fetched).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cl_spoof.infra.formats import display_text, markdown_cell
from cl_spoof.metrics.definitions import METRICS, table_metrics
from cl_spoof.reporting.aggregate import StrategyData
from cl_spoof.reporting.setup import DIGEST_CHARS


def _pm(mean: float | None, std: float | None, signed: bool = False) -> str:
    """``mean ± std`` with two decimals; ``—`` for a missing mean, no ``±`` for a missing std."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    text = fmt.format(mean)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std:.2f}"
    return text


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as ``mean ± std`` strings, for the terminal and Markdown.

    A row per run label (``run``; its ``strategy`` too where a label is not the strategy's
    name), then one column per metric of the registry, in table order (those shown
    ``if_computed``, such as pooled EER and the official metrics of the last stage, only
    when some run has them), then the EER reduction vs naive.
    """
    labels = table["label"] if "label" in table.columns else table["strategy"]
    out = pd.DataFrame({"run": labels})
    if list(labels) != list(table["strategy"]):
        out["strategy"] = table["strategy"]
    out["seeds"] = table["seeds"]
    for metric in table_metrics():
        mean = table.get(f"{metric.run_key}_mean")
        if mean is None or (metric.shown == "if_computed" and mean.isna().all()):
            continue
        std = table[f"{metric.run_key}_std"]
        out[metric.label] = [metric.mean_std(m, s) for m, s in zip(mean, std, strict=True)]
    out["EER reduction vs naive %"] = [
        _pm(m, s, True) for m, s in zip(table.eer_reduction_vs_naive_mean,
                                        table.eer_reduction_vs_naive_std, strict=True)]
    return out


#: The sign conventions, shown above every comparison table.
SIGNS = ("EER in %; BWT, forgetting and FWT in EER points. Forgetting > 0 and BWT < 0 mean "
         "the detector forgot earlier attacks; FWT > 0 means the stages before an attack's "
         "own stage already detected it better than chance; mean ± std over seeds.")

#: What the official columns are, shown under every comparison table.
OFFICIAL_NOTE = (
    "Avg forgetting: mean over attacks learned before the last stage of (final EER − best "
    "earlier EER). FWT (forward transfer): mean over the attacks learned after the first "
    "stage of (50 % − the attack's EER just before its own stage). Pooled EER: all test "
    "bona fide vs all test spoofs after the last stage. "
    "minDCF, actDCF, Cllr: ASVspoof 5 (Pspoof 0.05, Cmiss 1, Cfa 10; actDCF and Cllr on "
    "scores calibrated on data.calibration_split). min t-DCF: ASVspoof 2019 legacy, with the "
    "organisers' ASV scores. Per-stage values: each run's metrics.json, \"official\".")


def official_display(s: StrategyData) -> pd.DataFrame:
    """A strategy's official metrics per stage as strings, written and headed as the
    metric registry says (EER 2 decimals, costs 3)."""
    assert s.official is not None
    out = s.official.copy()
    for col in out.columns:
        if col in METRICS:
            out[col] = [METRICS[col].text(None if pd.isna(v) else v) for v in out[col]]
    return out.rename(columns={col: METRICS[col].label for col in out.columns
                               if col in METRICS})


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    header = "| " + " | ".join(markdown_cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(df.columns))) + "|"
    body = ["| " + " | ".join(markdown_cell(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


def final_eer_display(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Runs x attacks, ``mean ± std`` strings (EER %)."""
    attacks = strategies[0].attacks
    return pd.DataFrame([{"run": s.name, "seeds": len(s.seeds),
                          **{a: _pm(s.mean[-1, j], s.std[-1, j]) for j, a in enumerate(attacks)}}
                         for s in strategies])


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#222;
margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 28px;background:#fff}
h1{font-size:1.6em;margin:.2em 0 .4em}h2{font-size:1.25em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
p,li{line-height:1.45}.note{background:#fff6d6;border-left:4px solid #e0b000;padding:6px 10px}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 9px;text-align:right;white-space:nowrap}
th.text,td.text{text-align:left}th{background:#eef1f5}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
figcaption{font-size:.9em;color:#555;margin-top:.3em}
.grid{display:flex;flex-wrap:wrap;gap:18px}.grid figure{margin:0}
code{background:#f0f0f0;padding:0 3px;border-radius:3px}
.wide{overflow-x:auto;max-width:100%}
"""


_NUMBER = re.compile(r"^([+-]?\d+(\.\d+)?( ± \d+(\.\d+)?)?|—)$")


def _html_table(df: pd.DataFrame) -> str:
    """A plain HTML table; number columns (``mean ± std`` too) right-aligned, text left."""
    text_cols = [not all(_NUMBER.match(str(v)) for v in df[c]) for c in df.columns]

    def cell(tag: str, value: object, text: bool) -> str:
        attr = ' class="text"' if text else ""
        return f"<{tag}{attr}>{html.escape(display_text(value))}</{tag}>"

    head = "".join(cell("th", c, t) for c, t in zip(df.columns, text_cols, strict=True))
    body = "".join("<tr>" + "".join(cell("td", v, t) for v, t in zip(row, text_cols, strict=True))
                   + "</tr>" for row in df.itertuples(index=False))
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


@dataclass
class Doc:
    """What both report documents show."""

    strategies: list[StrategyData]
    summary: pd.DataFrame
    figures: dict[str, Path]
    tables: dict[str, Path]
    notes: list[str]
    setup: pd.DataFrame = field(default_factory=pd.DataFrame)  # setting, value
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run (runs.csv)
    det: dict[str, int] = field(default_factory=dict)  # label slug -> seed of its DET curves

    def captions(self) -> dict[str, str]:
        seeds = {s.name: s.caption for s in self.strategies}
        several = any(len(s.seeds) > 1 for s in self.strategies)
        avg = (" Where a run has several seeds, its EER matrices are averaged over seeds "
               "stage by stage (shaded band: ± std)." if several else "")
        out = {
            "forgetting_curves.png": (
                "Forgetting curves: EER of each attack after every training stage, one panel "
                "per run (shared axes). ★ marks the stage where the attack was learned; "
                "dotted segments: attack not learned yet. Joint training has a single stage "
                "on all attacks, drawn as dashed reference levels." + avg),
            "comparison.png": (
                "Final average EER over all attacks and backward transfer (BWT) per run; "
                "error bars: std over seeds. BWT < 0 means earlier attacks were forgotten; it "
                "is undefined for joint training."),
            "average_eer.png": (
                "Average EER after every stage, every run on one axis: over the attacks "
                "learned so far (left, the usual continual-learning curve) and over all "
                "attacks, the ones still to come included (right). Joint training, one stage, "
                "is a dashed level." + avg),
            "final_eer_bars.png": (
                "EER of every attack after the last stage, one bar per run; error bars: std "
                "over seeds."),
            "det_pooled.png": (
                "DET curves of all spoofs pooled against all bona fide after the last stage, "
                "one per run (its lowest seed), on normal-deviate axes."),
        }
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"EER matrix of {s.name}, {seeds[s.name]}."
            if s.slug in self.det:
                out[f"det_{s.slug}.png"] = (
                    f"DET curves of {s.name} after the last stage (seed {self.det[s.slug]}): "
                    "each attack's spoofs against all bona fide, and all spoofs pooled "
                    "(black).")
        return out

    heatmap_intro = (
        "One EER matrix per run: a row per training stage (the EER of every attack "
        "after it), a column per evaluated attack, values in %. The colour scale is fixed "
        "to 0–50 % (50 % = chance level; higher values get the top colour) so matrices "
        "compare at a glance; framed cells: the stage that learned the attack (or its "
        "family, when a stage learns a family of attacks). Trained "
        "stages are numbered from 1; stage 0, where present, is the pretrained starting "
        "model before any training, and columns pretrained:<attack> are the set it was "
        "trained on (data.pretrained_eval), never trained on again.")

    det_intro = (
        "Detection error trade-off: the miss rate (bona fide rejected) against the false "
        "alarm rate (spoofs accepted) at every threshold, both on the normal-deviate scale, "
        "from the score files of the last stage (thresholds swept as the organisers' EER "
        "does; the EER is where a curve crosses the dotted line).")

    setup_intro = (
        "What the runs share (a report holds runs of one data set, attack order, splits and "
        "model) and, per run, what it was trained with. Table: setup.csv; per run: "
        "runs.csv.")

    def table_sources(self) -> dict[str, str]:
        out = {"forgetting_curves.png": ", ".join(f"forgetting_{s.slug}.csv"
                                                  for s in self.strategies),
               "comparison.png": "comparison.csv",
               "average_eer.png": "average_eer.csv",
               "final_eer_bars.png": "final_eer.csv",
               "det_pooled.png": "det_pooled.csv"}
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"eer_matrix_{s.slug}.csv"
            out[f"det_{s.slug}.png"] = f"det_{s.slug}.csv"
        return out

    def runs_display(self) -> pd.DataFrame:
        """The per-run Setup table: a row per label, seeds and digests joined."""
        rows = []
        for label, group in self.runs.groupby("label", sort=False):
            first = group.iloc[0]
            digests = [str(d)[:DIGEST_CHARS] for d in group["config_digest"] if isinstance(
                d, str)]
            epochs = str(first["epochs"]) if first["first_epochs"] in (None, first["epochs"]) \
                or pd.isna(first["first_epochs"]) else \
                f"{first['first_epochs']} first, then {first['epochs']}"
            rows.append({"run": label, "strategy": first["strategy"],
                         "hyper-parameters": first["hyperparameters"],
                         "seeds": ", ".join(str(s) for s in group["seed"]),
                         "epochs": epochs,
                         "differs from the first run in": first["differs_from_first_in"] or "—",
                         "config digests": ", ".join(digests) or "—"})
        return pd.DataFrame(rows)


OFFICIAL_INTRO = ("Official metrics after every stage, from each stage's test scores "
                  "(mean over the runs that computed them; definitions: the documentation's "
                  "\"Metrics and sign conventions\").")


def _official_md(doc: Doc) -> list[str]:
    with_official = [s for s in doc.strategies if s.official is not None]
    if not with_official:
        return []
    out = ["## Official metrics per stage", OFFICIAL_INTRO]
    for s in with_official:
        out += [f"**{markdown_cell(s.name)}** (`official_{s.slug}.csv`)",
                to_markdown(official_display(s))]
    return out


def _official_html(doc: Doc) -> list[str]:
    with_official = [s for s in doc.strategies if s.official is not None]
    if not with_official:
        return []
    out = [f"<h2>Official metrics per stage</h2><p>{html.escape(OFFICIAL_INTRO)}</p>"]
    for s in with_official:
        out.append(f"<p><b>{html.escape(display_text(s.name))}</b> (<code>official_"
                   f"{html.escape(display_text(s.slug))}"
                   f".csv</code>)</p>" + _html_table(official_display(s)))
    return out


def _present(doc: Doc, names: Sequence[str]) -> list[str]:
    return [n for n in names if n in doc.figures]


def render_markdown(doc: Doc) -> str:
    """``report.md``: tables inline, figures as links to the PNGs next to it."""
    cap, src = doc.captions(), doc.table_sources()

    def fig(name: str) -> str:
        return f"![{name}]({name})\n\n*{cap[name]}* Data: `{src[name]}`."

    dets = _present(doc, ["det_pooled.png", *(f"det_{s.slug}.png" for s in doc.strategies)])
    blocks = ["# cl-spoof report: forgetting curves", SIGNS,
              *[f"> **Note:** {markdown_cell(n)}" for n in doc.notes],
              "## Setup", doc.setup_intro, to_markdown(doc.setup),
              to_markdown(doc.runs_display()),
              "## Comparison", to_markdown(comparison_display(doc.summary)),
              OFFICIAL_NOTE,
              "## Final EER per attack (%)", to_markdown(final_eer_display(doc.strategies)),
              "## Comparison chart", fig("comparison.png"),
              "## Average EER by stage", fig("average_eer.png"),
              "## Final EER per attack and run", fig("final_eer_bars.png"),
              "## Forgetting curves", fig("forgetting_curves.png"),
              *(["## DET curves", doc.det_intro, *map(fig, dets)] if dets else []),
              *_official_md(doc),
              "## EER matrices", doc.heatmap_intro,
              *(fig(f"heatmap_{s.slug}.png") for s in doc.strategies),
              "## Runs", to_markdown(doc.runs),
              "## Files", "".join(f"- `{n}`\n" for n in sorted({*doc.tables, *doc.figures}))]
    return "\n\n".join(b.rstrip("\n") for b in blocks) + "\n"


def render_html(doc: Doc) -> str:
    """``report.html``: self-contained (inline CSS, PNGs as data URIs, nothing external)."""
    cap, src = doc.captions(), doc.table_sources()

    def fig(name: str) -> str:
        return (f"<figure>{_img(doc.figures[name], cap[name])}<figcaption>"
                f"{html.escape(cap[name])} Data: <code>{html.escape(src[name])}</code>."
                "</figcaption></figure>")

    notes = "".join(f'<p class="note">{html.escape(display_text(n))}</p>' for n in doc.notes)
    files = "".join(f"<li><code>{html.escape(n)}</code></li>"
                    for n in sorted({*doc.tables, *doc.figures}))
    heatmaps = "".join(fig(f"heatmap_{s.slug}.png") for s in doc.strategies)
    dets = _present(doc, ["det_pooled.png", *(f"det_{s.slug}.png" for s in doc.strategies)])
    det_section = (f'<h2 id="det">DET curves</h2><p>{html.escape(doc.det_intro)}</p>'
                   f'<div class="grid">{"".join(map(fig, dets))}</div>') if dets else ""
    body = (
        "<h1>cl-spoof report: forgetting curves</h1>"
        f"<p>{html.escape(SIGNS)}</p>" + notes +
        f'<h2 id="setup">Setup</h2><p>{html.escape(doc.setup_intro)}</p>'
        + _html_table(doc.setup) + _html_table(doc.runs_display()) +
        '<h2 id="comparison">Comparison</h2>' + _html_table(comparison_display(doc.summary)) +
        f"<p>{html.escape(OFFICIAL_NOTE)}</p>" +
        "<h2>Final EER per attack (%)</h2>" + _html_table(final_eer_display(doc.strategies)) +
        "<h2>Comparison chart</h2>" + fig("comparison.png") +
        '<h2 id="average-eer">Average EER by stage</h2>' + fig("average_eer.png") +
        '<h2 id="final-eer">Final EER per attack and run</h2>' + fig("final_eer_bars.png") +
        "<h2>Forgetting curves</h2>" + fig("forgetting_curves.png") + det_section +
        "".join(_official_html(doc)) +
        f"<h2>EER matrices</h2><p>{html.escape(doc.heatmap_intro)}</p>"
        f'<div class="grid">{heatmaps}</div>'
        "<h2>Runs</h2>" + _html_table(doc.runs) +
        "<h2>Files</h2><p>Written next to this report (the CSVs hold the numbers behind "
        f"every figure):</p><ul>{files}</ul>"
    )
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>cl-spoof report</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
