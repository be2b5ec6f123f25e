"""The study report: one self-contained HTML file with the readout, the per-domain
table, inline SVG charts and samples of each domain's text.

>>> from odyssey.report import render_report
>>> render_report(results, curves, "study/report.html")
"""

from odyssey.report.html import render_report

__all__ = ["render_report"]
