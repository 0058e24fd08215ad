"""Rendering: names are checked before they become paths; files appear whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from netpolgen.errors import OutputError
from netpolgen.render import to_yaml, write_policy_files, write_stream


def _pol(ns: str, name: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


@pytest.mark.parametrize("ns,name", [("../etc", "x"), ("shop", "../../x"), ("Shop", "x"), ("shop", "a/b"), ("", "x")])
def test_names_that_are_not_dns1123_are_refused_and_nothing_is_written(tmp_path: Path, ns: str, name: str) -> None:
    with pytest.raises(OutputError):
        write_policy_files([_pol("good", "fine"), _pol(ns, name)], str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # not even the valid one: validation comes first


def test_files_are_replaced_whole_and_leave_no_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "p.yaml").write_text("old\n")
    write_policy_files([_pol("shop", "p")], str(tmp_path))
    assert yaml.safe_load((tmp_path / "shop" / "p.yaml").read_text()) == _pol("shop", "p")
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["p.yaml"]


def test_stream_output_is_a_multi_document_yaml_of_the_same_objects() -> None:
    buf = io.StringIO()
    write_stream([_pol("a", "x"), _pol("b", "y")], buf)
    assert list(yaml.safe_load_all(buf.getvalue())) == [_pol("a", "x"), _pol("b", "y")]


def test_keys_are_sorted_so_output_is_deterministic() -> None:
    text = to_yaml({"b": 1, "a": {"d": 2, "c": 3}})
    assert text == "a:\n  c: 3\n  d: 2\nb: 1\n"
