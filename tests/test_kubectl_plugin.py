"""`kubectl netpolgen ...`: the package installs a kubectl-netpolgen entry point; as a plugin,
generate/diff/report read the current kubeconfig context's cluster unless an inventory is named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from netpolgen.cli import kubectl_args

REPO = Path(__file__).resolve().parents[1]
PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")


def test_the_plugin_is_a_console_script_of_the_package() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-netpolgen"] == "netpolgen.cli:kubectl_main"


@pytest.mark.parametrize("argv, expected", [
    (["generate", "x.pcap"], ["generate", "--from-cluster", "x.pcap"]),
    (["diff", "x.pcap", "--existing", "d"], ["diff", "--from-cluster", "x.pcap", "--existing", "d"]),
    (["report", "x.pcap", "-p", "out"], ["report", "--from-cluster", "x.pcap", "-p", "out"]),
    (["generate", "x.pcap", "-i", "inv.json"], ["generate", "x.pcap", "-i", "inv.json"]),
    (["generate", "x.pcap", "--inventory=inv.json"], ["generate", "x.pcap", "--inventory=inv.json"]),
    (["generate", "x.pcap", "--context", "prod"], ["generate", "x.pcap", "--context", "prod"]),
    (["generate", "x.pcap", "--kubeconfig=k"], ["generate", "x.pcap", "--kubeconfig=k"]),
    (["explain", "a/b", "c/d", "80", "-i", "inv"], ["explain", "a/b", "c/d", "80", "-i", "inv"]),
    (["generate", "--help"], ["generate", "--help"]),
    ([], []),
])
def test_plugin_defaults_to_the_live_cluster_only_without_an_inventory(argv, expected) -> None:
    assert kubectl_args(argv) == expected


def _plugin_env(tmp_path: Path) -> dict[str, str]:
    script = shutil.which("kubectl-netpolgen", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("kubectl-netpolgen is not installed beside this interpreter (pip install -e .)")
    env = dict(os.environ, PATH=f"{Path(script).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               KUBECONFIG=str(tmp_path / "no-such-kubeconfig"), HOME=str(tmp_path))
    return env


def test_kubectl_runs_the_plugin(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    env = _plugin_env(tmp_path)
    proc = subprocess.run([kubectl, "netpolgen", "generate", PCAP, "-i", INV, "-o", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "shop").iterdir()) == \
        sorted(p.name for p in (REPO / "tests" / "golden" / "demo" / "shop").iterdir())


def test_without_an_inventory_the_plugin_asks_the_current_context(tmp_path: Path) -> None:
    env = _plugin_env(tmp_path)
    proc = subprocess.run(["kubectl-netpolgen", "generate", PCAP, "-o", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, timeout=300)
    # No cluster here: the plugin tried the live cluster (as --from-cluster does) and says why it could not.
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: ") and "kubeconfig" in proc.stderr
    assert not (tmp_path / "out").exists()
