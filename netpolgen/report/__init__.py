"""The review report: a picture of the connectivity, every rule with its evidence, coverage and
the self-check, as one self-contained HTML file and a Markdown twin.

- ``model``: what a report says (frozen records every renderer reads);
- ``build``: the model from policies, evidence, a baseline and the run's findings;
- ``coverage``: what the observation did not show;
- ``layout``: node and group positions (pure Python, see its docstring for why);
- ``svg``, ``html``, ``markdown``: the forms;
- ``write``: both files, atomically.
"""

from netpolgen.report.build import build_report
from netpolgen.report.html import render_html
from netpolgen.report.markdown import render_markdown
from netpolgen.report.model import Report
from netpolgen.report.write import report_paths, write_report

__all__ = ["Report", "build_report", "render_html", "render_markdown", "report_paths", "write_report"]
