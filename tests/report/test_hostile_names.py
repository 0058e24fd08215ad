"""Names come from the input (flow logs name pods and namespaces as they please): in the HTML they
stay text, never markup; in JUnit they stay well-formed XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from netpolgen.report import render_html, render_markdown
from netpolgen.report.junit import Case, render_junit
from netpolgen.report.model import CheckView, Coverage, Edge, Node, Report
from tests.report.htmlparse import parse_report

EVIL = '<script>alert("x")</script><img src=http://evil.example/x.png>'


def test_markup_in_names_is_escaped_in_the_html() -> None:
    nodes = (Node(f"ns/{EVIL}[Pod]", EVIL, "ns", "pod", EVIL), Node("10.0.0.1", "10.0.0.1", "outside: clients", "external"))
    report = Report(EVIL, None, (), nodes, (Edge("10.0.0.1", nodes[0].id, ("TCP 80",), "new", 1),), (),
                    Coverage(low_confidence=((EVIL, EVIL),)), CheckView(checked=1, denied=(EVIL,)))
    html = render_html(report)
    parsed = parse_report(html)
    assert parsed.scripts == 1 and parsed.external_refs == [] and "img" not in parsed.tags
    assert set(parsed.nodes.values()) == {nodes[0].id, "10.0.0.1"}
    # Mermaid labels are quoted strings: no quote, bracket or angle bracket of the name survives.
    diagram = render_markdown(report).split("```mermaid")[1].split("```")[0]
    assert "<script" not in diagram and '("x")' not in diagram


def test_characters_xml_cannot_hold_are_replaced_in_junit() -> None:
    text = render_junit("suite", [Case("pod\x00\x1b[31m -> x", "netpolgen.ns", "denied \x07")])
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case.get("name") == "pod\ufffd\ufffd[31m -> x"
    assert case.find("failure").get("message") == "denied \ufffd"
