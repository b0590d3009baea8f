"""Reports from finished runs, by job: read runs (:mod:`~.runs`), aggregate over seeds
(:mod:`~.aggregate`), draw figures (:mod:`~.figures`), render Markdown/HTML
(:mod:`~.render`), choose and claim the output folder (:mod:`~.output`), and the
whole report (:func:`build_report`). No Avalanche, no workflow is imported."""

from cl_spoof.reporting.build import ReportResult, build_report
from cl_spoof.reporting.runs import ReportError

__all__ = ["ReportError", "ReportResult", "build_report"]
