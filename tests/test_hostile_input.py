"""Hostile and broken input through the CLI, one test per row of the README's "Bad input" table:
the exact exit code, one `Error: <file>: <where>: <what>` line (or the summary's skip counts),
no traceback, and nothing written outside --output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from netpolgen import exitcodes
from tests import kube, shop

REPO = Path(__file__).resolve().parents[1]
HUBBLE_10 = "hubble-flows/basic-sample-10-flows.json"


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, **kw)


def _one_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


def _hubble_with(samples: Path, tmp_path: Path, edit) -> Path:
    """The 10-flow Hubble sample with record 3 changed by ``edit(flow)``."""
    lines = (samples / HUBBLE_10).read_text().splitlines()
    rec = json.loads(lines[2])
    edit(rec["flow"])
    lines[2] = json.dumps(rec)
    out = tmp_path / "flows.json"
    out.write_text("\n".join(lines) + "\n")
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_namespace_that_is_a_path_is_a_skipped_record_not_a_fatal_error_nor_a_path(samples: Path, tmp_path: Path) -> None:
    def evil(flow: dict) -> None:
        for side in ("source", "destination"):
            if "namespace" in flow[side]:
                flow[side]["namespace"] = "../../etc"
    flows = _hubble_with(samples, tmp_path, evil)
    out = tmp_path / "out"
    proc = run_cli("generate", str(flows), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "invalid namespace name: 1" in proc.stderr
    assert f"{flows}: connection " in proc.stderr and "'../../etc' is not a DNS-1123 label" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.json", "out"]  # nothing beside
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    assert "etc" not in {p.name for p in out.rglob("*")}


def test_under_strict_an_oversized_record_is_fatal_with_its_line(tmp_path: Path, samples: Path) -> None:
    lines = (samples / HUBBLE_10).read_text().splitlines()
    lines.insert(4, '{"flow": "' + "x" * 5000 + '"}')
    flows = tmp_path / "flows.json"
    flows.write_text("\n".join(lines) + "\n")
    proc = run_cli("generate", str(flows), "--output", str(tmp_path / "out"), "--max-record-size", "4096")
    assert proc.returncode == 0, proc.stderr
    assert "oversized record: 1" in proc.stderr
    assert f"{flows}: line 5: oversized record" in proc.stderr
    proc = run_cli("generate", str(flows), "--output", str(tmp_path / "out2"), "--max-record-size", "4096", "--strict")
    _one_error(proc, exitcodes.INPUT_ERROR, f"{flows}: line 5: record longer than 4096 bytes")
    assert not (tmp_path / "out2").exists()


def test_an_oversized_csv_row_is_skipped_and_the_line_numbers_after_it_stay_right(tmp_path: Path) -> None:
    table = tmp_path / "flows.csv"
    table.write_text("src_ip,dst_ip,dst_port,proto\n10.0.0.1,10.0.0.2,80,TCP\n"
                     + "10.0.0.3," + "9" * 10_000 + ",80,TCP\n" + "10.0.0.4,10.0.0.2,80,XTP\n")
    proc = run_cli("generate", str(table), "--output", "-", "--max-record-size", "1000")
    assert f"{table}: line 3: oversized record" in proc.stderr
    assert f"{table}: line 4:" in proc.stderr  # the bad protocol of the next line, where it is


def test_a_gzip_bomb_is_stopped_with_a_clear_error(tmp_path: Path) -> None:
    bomb = tmp_path / "flows.json.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(bomb, "wb") as f:
        f.write(comp.compress(b'{"flow": {}}\n'))
        for _ in range(300):  # 300 MB of spaces in ~300 kB
            f.write(comp.compress(b" " * (1 << 20)))
        f.write(comp.flush())
    proc = run_cli("generate", str(bomb), "--output", str(tmp_path / "out"), "--format", "hubble")
    _one_error(proc, exitcodes.INPUT_ERROR, str(bomb), "compressed byte", "compression bomb")
    assert not (tmp_path / "out").exists()


def test_a_billion_laughs_inventory_is_refused(tmp_path: Path, samples: Path) -> None:
    doc = ["kind: Pod", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        doc.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    inv = tmp_path / "inv.yaml"
    inv.write_text("\n".join(doc) + "\n")
    proc = run_cli("generate", str(samples / HUBBLE_10), "--inventory", str(inv), "--output", str(tmp_path / "out"))
    _one_error(proc, exitcodes.INPUT_ERROR, f"{inv}: line ", "billion laughs")


def test_json_nested_too_deep_is_an_input_error_naming_the_file(tmp_path: Path, samples: Path) -> None:
    inv = tmp_path / "inv.json"
    inv.write_text('{"kind": "List", "items": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    proc = run_cli("generate", str(samples / HUBBLE_10), "--inventory", str(inv), "--output", str(tmp_path / "out"))
    _one_error(proc, exitcodes.INPUT_ERROR, str(inv), "nested deeper than")


def test_a_deeply_nested_flow_record_is_a_skipped_invalid_record(tmp_path: Path, samples: Path) -> None:
    flows = tmp_path / "flows.json"
    flows.write_text((samples / HUBBLE_10).read_text() + '{"flow": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    proc = run_cli("generate", str(flows), "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert f"{flows}: line 11: invalid JSON" in proc.stderr


def test_inventory_kinds_netpolgen_does_not_use_are_counted_per_kind(tmp_path: Path) -> None:
    objects = kube.as_list(shop.objects())
    objects["items"] += [{"kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "shop"}} for i in range(3)]
    objects["items"].append({"kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}})
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(objects))
    demo = REPO / "captures" / "demo.pcap"
    proc = run_cli("generate", str(demo), "--inventory", str(inv), "--output", "-")
    assert "inventory: objects of kinds netpolgen does not use (ignored): ConfigMap 3, Secret 1" in proc.stderr


def test_input_without_usable_traffic_exits_no_traffic_saying_what_was_read(tmp_path: Path) -> None:
    table = tmp_path / "flows.csv"
    table.write_text("src_ip,dst_ip,dst_port,proto\n10.0.0.1,not-an-ip,80,TCP\n")
    out = tmp_path / "out"
    proc = run_cli("generate", str(table), "--output", str(out))
    _one_error(proc, exitcodes.NO_TRAFFIC, str(table), "no usable traffic", "1 records", "1 skipped", "nothing written")
    assert not out.exists()


def test_output_naming_an_existing_file_is_a_clear_output_error(tmp_path: Path, samples: Path) -> None:
    target = tmp_path / "policies"
    target.write_text("precious\n")
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", str(target))
    _one_error(proc, exitcodes.OUTPUT_ERROR, f"{target}: exists and is not a directory")
    assert target.read_text() == "precious\n"


def test_a_symlink_inside_the_output_is_refused_and_its_target_untouched(tmp_path: Path, samples: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    (out / "bookinfo").mkdir(parents=True)
    (out / "bookinfo" / "default-deny.yaml").symlink_to(victim)
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", str(out))
    _one_error(proc, exitcodes.OUTPUT_ERROR, "default-deny.yaml: is a symbolic link", str(victim))
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "victim.txt"]


def test_an_output_directory_holding_other_files_is_not_replaced(tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "home"
    (out / "Documents").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", str(out))
    _one_error(proc, exitcodes.OUTPUT_ERROR, "refusing to replace the output directory")
    assert (out / "notes.txt").read_text() == "mine\n"


def test_a_file_size_limit_leaves_the_previous_output_as_it_was(tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("generate", str(samples / HUBBLE_10), "--output", str(out)).returncode == 0
    before = _tree(out)
    other = samples / "hubble-flows" / "basic-sample-400-tcp-flows.json"

    def small_files() -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))  # smaller than any policy file

    proc = run_cli("generate", str(other), "--output", str(out), preexec_fn=small_files)
    _one_error(proc, exitcodes.OUTPUT_ERROR, str(out), "File too large")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_mid_write_leaves_the_previous_output_and_no_staging_directory(tmp_path: Path, samples: Path,
                                                                                signame: str) -> None:
    out = tmp_path / "out"
    assert run_cli("generate", str(samples / HUBBLE_10), "--output", str(out)).returncode == 0
    before = _tree(out)
    other = samples / "hubble-flows" / "basic-sample-400-tcp-flows.json"
    # The real CLI, with the signal sent to itself after the second file of the new output is
    # written: the run is then certainly mid-write.
    script = f"""
import os, signal, sys
from netpolgen import render
real, done = render._write_new, []
def write_then_signal(*a):
    real(*a)
    done.append(1)
    if len(done) == 2:
        os.kill(os.getpid(), signal.{signame})
render._write_new = write_then_signal
from netpolgen.cli import main
main(["generate", {str(other)!r}, "--output", {str(out)!r}])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    _one_error(proc, exitcodes.INTERRUPTED, "interrupted")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_run_replaces_the_output_whole_and_keeps_namespaces_it_did_not_write(tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "out"
    (out / "other-ns").mkdir(parents=True)
    (out / "other-ns" / "kept.yaml").write_text("kind: NetworkPolicy\n")
    (out / ".gitkeep").write_text("")
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "other-ns" / "kept.yaml").read_text() == "kind: NetworkPolicy\n"
    assert (out / ".gitkeep").exists()
    assert (out / "bookinfo" / "default-deny.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stdout_output_still_works(samples: Path) -> None:
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("---\n") and "kind: NetworkPolicy" in proc.stdout


def test_no_traceback_without_debug_and_one_with_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    plain = run_cli("generate", missing)
    _one_error(plain, exitcodes.INPUT_ERROR, missing, "no such file")
    debug = run_cli("--debug", "generate", missing)
    assert debug.returncode == exitcodes.INPUT_ERROR
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == f"Error: {missing}: no such file"


def test_a_bug_is_one_line_and_exit_70_not_a_traceback(tmp_path: Path, samples: Path) -> None:
    script = f"""
from netpolgen import pipeline
def broken(*a, **k):
    raise ZeroDivisionError("division by zero")
pipeline.aggregate_edges = broken
from netpolgen.cli import main
main(["generate", {str(samples / HUBBLE_10)!r}, "--output", "-"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "NETPOLGEN_DEBUG": "0"})
    _one_error(proc, exitcodes.INTERNAL_ERROR, "internal error: ZeroDivisionError", "--debug")


def test_a_failed_self_check_exits_3_with_the_files_written_to_inspect(tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "out"
    script = f"""
from netpolgen import pipeline
def failing(edges, inventory, synthesis):
    return pipeline.SelfCheck(checked=1, denied=["shop/a -> shop/b TCP/80"])
pipeline.self_check = failing
from netpolgen.cli import main
main(["generate", {str(samples / HUBBLE_10)!r}, "--output", {str(out)!r}])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == exitcodes.SELF_CHECK_FAILED, proc.stderr
    assert "self-check: FAILED: 1 of 1 observed connections are DENIED" in proc.stderr
    assert (out / "bookinfo" / "default-deny.yaml").exists()


def test_an_inventory_object_with_an_invalid_name_is_an_error_naming_file_and_item(tmp_path: Path) -> None:
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "b", "namespace": "ok"}, "status": {"podIP": "10.244.0.6"}},
        {"kind": "Pod", "metadata": {"name": "a", "namespace": "../etc"}, "status": {"podIP": "10.244.0.5"}}]}))
    flows = tmp_path / "flows.csv"
    flows.write_text("src_ip,dst_ip,dst_port,protocol\n10.244.0.6,10.244.0.5,80,TCP\n")
    proc = run_cli("generate", str(flows), "--inventory", str(inv), "--output", str(tmp_path / "out"))
    _one_error(proc, exitcodes.INPUT_ERROR,
               f"{inv}: document 1: items[1]: metadata.namespace: '../etc' is not a valid namespace name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.csv", "inv.json"]


@pytest.fixture()
def small_filesystem(tmp_path: Path):
    """A 40 kB tmpfs (root only: skipped where mounting is not allowed)."""
    mnt = tmp_path / "vol"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_leaves_the_previous_output_as_it_was(small_filesystem: Path, samples: Path) -> None:
    out = small_filesystem / "out"
    assert run_cli("generate", str(samples / HUBBLE_10), "--output", str(out)).returncode == 0
    before = _tree(out)
    proc = run_cli("generate", str(samples / "hubble-flows" / "basic-sample-400-tcp-flows.json"), "--output", str(out))
    _one_error(proc, exitcodes.OUTPUT_ERROR, "No space left on device")
    assert _tree(out) == before
    assert sorted(p.name for p in small_filesystem.iterdir()) == ["out"]


def test_an_output_directory_that_is_a_mount_point_is_written_file_by_file(small_filesystem: Path, samples: Path) -> None:
    """A mount point (a container volume) cannot be renamed: files are moved in one by one."""
    proc = run_cli("generate", str(samples / HUBBLE_10), "--output", str(small_filesystem))
    assert proc.returncode == 0, proc.stderr
    assert (small_filesystem / "bookinfo" / "default-deny.yaml").exists()
    assert not [p for p in small_filesystem.iterdir() if p.name.startswith(".")]
