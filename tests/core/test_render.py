"""Rendering: names are checked before they become paths; files appear whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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


# Strings YAML would read as something else unless quoted, and ones that need escaping.
TRICKY = st.sampled_from(["", "yes", "no", "on", "null", "~", "true", "0x10", "0o7", "123", "1e3", "-1",
                          "1.5", ".inf", "2024-05-01", "a: b", "- x", "#c", " lead", "trail ", "a\nb",
                          "ünï", "'q'", '"d"', "*a", "&b", "!t", "%p", "@", "`", "{x}", "[y]", "x,y"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), TRICKY,
                    st.text(max_size=12))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(TRICKY, st.text(max_size=8)), inner, max_size=4)),
    max_leaves=25)


class _PyYamlDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # PyYAML's own representer
    def ignore_aliases(self, data: object) -> bool:
        return True


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), DOCS, max_size=5))
def test_the_fast_representer_writes_what_pyyaml_writes(doc: dict) -> None:
    """Byte for byte the output of PyYAML's SafeRepresenter, on data full of strings that need
    quoting; and it reads back as the same data."""
    expected = yaml.dump(doc, Dumper=_PyYamlDumper, sort_keys=True, default_flow_style=False, allow_unicode=True)
    assert to_yaml(doc) == expected
    assert yaml.safe_load(to_yaml(doc)) == doc
