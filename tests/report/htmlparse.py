"""Read a report back from its HTML with the standard library's parser: the nodes and arrows of
the picture and the evidence rows of the tables, as a reviewer's browser would show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class ParsedReport:
    nodes: dict[str, str] = field(default_factory=dict)  # svg element id -> data-id (workload or address)
    node_groups: dict[str, str] = field(default_factory=dict)  # data-id -> group it is drawn in
    groups: list[str] = field(default_factory=list)
    edges: list[dict[str, str]] = field(default_factory=list)  # data-src/dst (element ids), status, title
    port_labels: list[str] = field(default_factory=list)
    rules: list[dict[str, str]] = field(default_factory=list)  # the data-* of each evidence row
    policies: list[str] = field(default_factory=list)
    external_refs: list[str] = field(default_factory=list)  # src/href attributes (there must be none)
    tags: set[str] = field(default_factory=set)
    meta_csp: str = ""
    scripts: int = 0


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.r = ParsedReport()
        self._in_edge: dict[str, str] | None = None
        self._text_into: list[str] | None = None
        self._group_stack: list[str] = []

    def handle_starttag(self, tag: str, attrs_list) -> None:
        a = {k: v or "" for k, v in attrs_list}
        self.r.tags.add(tag)
        for k in ("src", "href", "xlink:href"):
            if k in a:
                self.r.external_refs.append(a[k])
        if tag == "meta" and a.get("http-equiv", "").lower() == "content-security-policy":
            self.r.meta_csp = a.get("content", "")
        if tag == "script":
            self.r.scripts += 1
        cls = a.get("class", "").split()
        if tag == "g" and "group" in cls:
            self.r.groups.append(a["data-group"])
        if tag == "g" and "node" in cls:
            self.r.nodes[a["id"]] = a["data-id"]
            self.r.node_groups[a["data-id"]] = a["data-group"]
        if tag == "g" and "edge" in cls:
            self._in_edge = {"src": a["data-src"], "dst": a["data-dst"], "status": a["data-status"], "ports": a["data-ports"], "title": ""}
            self.r.edges.append(self._in_edge)
        if tag == "title" and self._in_edge is not None:
            self._text_into = []
        if tag == "text" and "port" in cls:
            self._text_into = []
        if tag == "tr" and "rule" in cls:
            self.r.rules.append({k.removeprefix("data-"): v for k, v in a.items() if k.startswith("data-")})
        if tag == "section" and "policy" in cls:
            self.r.policies.append(a["data-policy"])

    def handle_data(self, data: str) -> None:
        if self._text_into is not None:
            self._text_into.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_edge is not None and self._text_into is not None:
            self._in_edge["title"] = "".join(self._text_into)
            self._text_into = None
        elif tag == "text" and self._text_into is not None:
            self.r.port_labels.append("".join(self._text_into))
            self._text_into = None
        if tag == "g":
            self._in_edge = None


def parse_report(html: str) -> ParsedReport:
    p = _Parser()
    p.feed(html)
    p.close()
    return p.r
