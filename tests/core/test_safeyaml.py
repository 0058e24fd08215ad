"""YAML is read with the safe loader and bounded: aliases, depth and size cannot make a small
file a large structure; ordinary manifests read as yaml.safe_load_all reads them."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.errors import InventoryError
from netpolgen.safeyaml import YamlLimits, load_all


def _laughs(levels: int) -> str:
    doc = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    doc += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(doc) + "\n"


def test_billion_laughs_is_refused_naming_the_line() -> None:
    with pytest.raises(InventoryError) as e:
        list(load_all(_laughs(10), "lol.yaml", InventoryError))
    assert (e.value.file, e.value.where) == ("lol.yaml", "line 8")  # a7 already expands past 2e7
    assert "billion laughs" in e.value.what


def test_a_few_aliases_are_fine_and_read_as_pyyaml_reads_them() -> None:
    text = _laughs(3) + "---\nx: &x {k: v}\ny: *x\n"
    assert list(load_all(text, "f.yaml", InventoryError)) == list(yaml.safe_load_all(text))


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(InventoryError, match="recursive YAML alias"):
        list(load_all("a: &a [1, *a]\n", "f.yaml", InventoryError))


def test_depth_alias_references_and_size_are_bounded() -> None:
    limits = YamlLimits(max_depth=5, max_alias_references=3, max_document_bytes=1000)
    with pytest.raises(InventoryError, match="nested deeper than 5"):
        list(load_all("a: [[[[[[1]]]]]]\n", "f.yaml", InventoryError, limits))
    with pytest.raises(InventoryError, match="more than 3 alias references"):
        list(load_all("a: &a 1\nb: [*a, *a, *a, *a]\n", "f.yaml", InventoryError, limits))
    with pytest.raises(InventoryError, match="larger than 1000 bytes"):
        list(load_all("a: " + "x" * 2000 + "\n", "f.yaml", InventoryError, limits))


def test_unsafe_tags_are_errors_not_objects() -> None:
    with pytest.raises(InventoryError, match="line 1: invalid YAML"):
        list(load_all("!!python/object/apply:os.system ['true']\n", "f.yaml", InventoryError))


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(st.lists(DOCS, min_size=1, max_size=3))
def test_documents_within_the_bounds_read_exactly_as_safe_load_all(docs: list) -> None:
    text = yaml.safe_dump_all(docs)
    assert list(load_all(text, "f.yaml", InventoryError)) == list(yaml.safe_load_all(text))
