"""Printing a command's result in the chosen ``--format`` (json, markdown, junit): one place per
command, so that the forms of one result are made side by side."""

from __future__ import annotations

import json
import sys


def print_generate(fmt: str, pub, report_model, written: list[str]) -> None:
    if fmt == "json":
        doc = report_model.to_json()
        doc["files"] = {"written": sorted(written), "unchanged": sorted(pub.unchanged), "removed": sorted(pub.removed)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "markdown":
        from netpolgen.report import render_markdown

        sys.stdout.write(render_markdown(report_model))
    elif fmt == "junit":
        from netpolgen.report.check import junit_cases
        from netpolgen.report.junit import render_junit

        sys.stdout.write(render_junit("netpolgen generate: self-check", junit_cases(pub.evidence, pub.policies)))
