"""Writing a report: ``PATH`` (HTML) and its Markdown twin beside it."""

from __future__ import annotations

import os

from netpolgen.report.html import render_html
from netpolgen.report.markdown import render_markdown
from netpolgen.report.model import Report


def report_paths(path: str) -> tuple[str, str]:
    """``report.html`` → (``report.html``, ``report.md``); a path without ``.html``/``.htm``
    gets ``.html`` added."""
    root, ext = os.path.splitext(path)
    if ext.lower() in (".html", ".htm"):
        return path, root + ".md"
    return path + ".html", path + ".md"


def write_report(report: Report, path: str) -> tuple[str, str]:
    from netpolgen.render import write_file_atomic

    html_path, md_path = report_paths(path)
    html, md = render_html(report), render_markdown(report)
    write_file_atomic(html_path, html)
    write_file_atomic(md_path, md)
    return html_path, md_path
