"""JUnit XML for CI systems: each observed connection a test case, failed when the policies
deny it. Built with ``xml.etree`` so that every name is escaped as XML requires."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# Characters XML 1.0 cannot carry at all, escaped or not (names come from the input).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class Case:
    name: str
    classname: str
    failure: str = ""  # the message; empty: passed
    skipped: str = ""
    detail: str = ""


def render_junit(suite: str, cases: list[Case]) -> str:
    root = ET.Element("testsuites", name="netpolgen")
    failures = sum(1 for c in cases if c.failure)
    skipped = sum(1 for c in cases if c.skipped and not c.failure)
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                       errors="0", skipped=str(skipped))
    root.set("tests", str(len(cases)))
    root.set("failures", str(failures))
    for c in cases:
        tc = ET.SubElement(ts, "testcase", name=_x(c.name), classname=_x(c.classname))
        if c.failure:
            f = ET.SubElement(tc, "failure", message=_x(c.failure), type="denied")
            f.text = _x(c.detail or c.failure)
        elif c.skipped:
            ET.SubElement(tc, "skipped", message=_x(c.skipped))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
