"""A real browser opens the report offline: headless Chromium runs its script without a console
message, and its screenshot shows a drawn page, not a blank one. Skipped (saying why) only where
no Chromium is installed; ``.ci/run`` installs Debian's ``chromium`` when it runs as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netpolgen.report import render_html
from netpolgen.report.model import OUTSIDE_CLIENTS, CheckView, Coverage, Edge, Node, Report
from tests.report.htmlparse import parse_report
from tests.report.png import colour_stats

REPO = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (apt-get install -y chromium; .ci/run installs it when run as root)")


def _run(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [browser, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            f"--user-data-dir={profile}", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions",
            # Offline: every request would go to a proxy that is not there.
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--window-size=1400,1000", "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0", *extra,
            page.as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to sandbox as root
    return subprocess.run(args, capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def _open(browser: str, page: Path, tmp: Path) -> tuple[bytes, str]:
    shot = tmp / (page.stem + ".png")
    proc = _run(browser, page, tmp / "profile-shot", f"--screenshot={shot}")
    assert shot.exists(), proc.stderr[-2000:]
    assert _console(proc.stderr) == []
    dom = _run(browser, page, tmp / "profile-dom", "--dump-dom")
    assert _console(dom.stderr) == []
    return shot.read_bytes(), dom.stdout


def test_demo_report_opens_offline_runs_its_script_and_draws(chromium, tmp_path: Path) -> None:
    page = tmp_path / "demo.html"
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", str(REPO / "captures" / "demo.pcap"),
                           "-i", str(REPO / "captures" / "demo-inventory.json"), "-o", str(tmp_path / "out"),
                           "--report", str(page), "-q"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    png, dom = _open(chromium, page, tmp_path)
    assert 'data-ready="1"' in dom  # the inline script ran to its end
    assert len(parse_report(dom).nodes) == len(parse_report(page.read_text()).nodes)
    colours, drawn = colour_stats(png)
    assert colours > 20 and drawn > 0.02, (colours, drawn)


def test_two_hundred_workload_report_opens_and_draws(chromium, tmp_path: Path) -> None:
    namespaces = [f"team-{i}" for i in range(10)]
    nodes = [Node(f"{ns}/svc-{j}[Deployment]", f"svc-{j}", ns, "pod") for j in range(20) for ns in namespaces]
    nodes.append(Node("198.51.100.1", "198.51.100.1", OUTSIDE_CLIENTS, "external"))
    ids = [n.id for n in nodes]
    edges = tuple(Edge(ids[i], ids[(i * 7 + 3) % 200], (f"TCP {8000 + i % 50}",), ("new", "unchanged", "removed")[i % 3], i)
                  for i in range(200)) + (Edge("198.51.100.1", ids[0], ("TCP 443",), "new", 5),)
    report = Report("200 workloads", ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"), (), tuple(nodes), edges, (),
                    Coverage(), CheckView(checked=201))
    page = tmp_path / "big.html"
    page.write_text(render_html(report))
    png, dom = _open(chromium, page, tmp_path)
    assert 'data-ready="1"' in dom
    assert len(parse_report(dom).nodes) == 201
    colours, drawn = colour_stats(png)
    assert colours > 20 and drawn > 0.02, (colours, drawn)
