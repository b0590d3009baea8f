"""Text renderings of a report: Markdown and HTML documents, terminal/Markdown tables.

``report.html`` is self-contained (inline CSS, PNGs as data URIs, nothing fetched).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cl_spoof.infra.formats import display_text, markdown_cell
from cl_spoof.metrics.definitions import METRICS, table_metrics
from cl_spoof.reporting.aggregate import StrategyData, runs_table


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

    One column per metric of the registry, in table order (those shown ``if_computed``,
    such as pooled EER and the official metrics of the last stage, only when some run
    has them), then the EER reduction vs naive.
    """
    out = pd.DataFrame({"strategy": table.strategy, "seeds": table.seeds})
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


#: What the official columns are, shown under every comparison table.
OFFICIAL_NOTE = (
    "Avg forgetting: mean over attacks learned before the last stage of (final EER − best "
    "earlier EER). Pooled EER: all test bona fide vs all test spoofs after the last stage. "
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
    """Strategies x attacks, ``mean ± std`` strings (EER %)."""
    attacks = strategies[0].attacks
    return pd.DataFrame([{"strategy": s.name, "seeds": len(s.seeds),
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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

    def captions(self) -> dict[str, str]:
        seeds = {s.name: s.caption for s in self.strategies}
        several = any(len(s.seeds) > 1 for s in self.strategies)
        avg = (" Where a strategy has several seeds, its EER matrices are averaged over seeds "
               "stage by stage (shaded band: ± std)." if several else "")
        out = {
            "forgetting_curves.png": (
                "Forgetting curves: EER of each attack after every training stage, one panel "
                "per strategy (shared axes). ★ marks the stage where the attack was learned; "
                "dotted segments: attack not learned yet. Joint training has a single stage "
                "on all attacks, drawn as dashed reference levels." + avg),
            "comparison.png": (
                "Final average EER over all attacks and backward transfer (BWT) per strategy; "
                "error bars: std over seeds. BWT < 0 means earlier attacks were forgotten; it "
                "is undefined for joint training."),
        }
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"EER matrix of {s.name}, {seeds[s.name]}."
        return out

    heatmap_intro = (
        "One EER matrix per strategy: a row per training stage (the EER of every attack "
        "after it), a column per evaluated attack, values in %. The colour scale is fixed "
        "to 0–50 % (50 % = chance level; higher values get the top colour) so matrices "
        "compare at a glance; framed cells: the stage that learned the attack. Trained "
        "stages are numbered from 1; stage 0, where present, is the pretrained starting "
        "model before any training, and columns pretrained:<attack> are the set it was "
        "trained on (data.pretrained_eval), never trained on again.")

    def table_sources(self) -> dict[str, str]:
        out = {"forgetting_curves.png": ", ".join(f"forgetting_{s.slug}.csv"
                                                  for s in self.strategies),
               "comparison.png": "comparison.csv"}
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"eer_matrix_{s.slug}.csv"
        return out


OFFICIAL_INTRO = ("Official metrics after every stage, from each stage's test scores "
                  "(mean over the runs that computed them; definitions: README, \"Official "
                  "metrics and score files\").")


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


def render_markdown(doc: Doc) -> str:
    """``report.md``: tables inline, figures as links to the PNGs next to it."""
    cap, src = doc.captions(), doc.table_sources()

    def fig(name: str) -> str:
        return f"![{name}]({name})\n\n*{cap[name]}* Data: `{src[name]}`."

    blocks = ["# cl-spoof report: forgetting curves",
              "EER in %, BWT and forgetting in EER points (BWT < 0 and forgetting > 0 mean the "
              "detector forgot); mean ± std over seeds.",
              *[f"> **Note:** {markdown_cell(n)}" for n in doc.notes],
              "## Strategy comparison", to_markdown(comparison_display(doc.summary)),
              OFFICIAL_NOTE,
              "## Final EER per attack (%)", to_markdown(final_eer_display(doc.strategies)),
              "## Comparison chart", fig("comparison.png"),
              "## Forgetting curves", fig("forgetting_curves.png"),
              *_official_md(doc),
              "## EER matrices", doc.heatmap_intro,
              *(fig(f"heatmap_{s.slug}.png") for s in doc.strategies),
              "## Runs", to_markdown(runs_table(doc.strategies)),
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
    body = (
        "<h1>cl-spoof report: forgetting curves</h1>"
        "<p>EER in %, BWT and forgetting in EER points (BWT &lt; 0 and forgetting &gt; 0 mean "
        "the detector forgot); mean ± std over seeds.</p>" + notes +
        "<h2>Strategy comparison</h2>" + _html_table(comparison_display(doc.summary)) +
        f"<p>{html.escape(OFFICIAL_NOTE)}</p>" +
        "<h2>Final EER per attack (%)</h2>" + _html_table(final_eer_display(doc.strategies)) +
        "<h2>Comparison chart</h2>" + fig("comparison.png") +
        "<h2>Forgetting curves</h2>" + fig("forgetting_curves.png") +
        "".join(_official_html(doc)) +
        f"<h2>EER matrices</h2><p>{html.escape(doc.heatmap_intro)}</p>"
        f'<div class="grid">{heatmaps}</div>'
        "<h2>Runs</h2>" + _html_table(runs_table(doc.strategies)) +
        "<h2>Files</h2><p>Written next to this report (the CSVs hold the numbers behind "
        f"every figure):</p><ul>{files}</ul>"
    )
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>cl-spoof report</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
