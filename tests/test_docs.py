"""The repository's own documents: docs/inputs.md is what layers/inputs_doc.py makes from the
schema (so it cannot drift), and the README's links resolve inside a clone."""

from __future__ import annotations

import re
from pathlib import Path

from buque.layers.inputs_doc import render
from buque.layers.schema import FIELD_DOCS, LAYER_FIELDS

REPO = Path(__file__).resolve().parents[1]


def test_inputs_doc_is_generated_from_the_schema() -> None:
    doc = (REPO / "docs" / "inputs.md").read_text("utf-8")
    assert doc == render(), ("docs/inputs.md is stale: run "
                             "`python -m layers.inputs_doc > docs/inputs.md`")


def test_every_canonical_field_is_documented() -> None:
    doc = (REPO / "docs" / "inputs.md").read_text("utf-8")
    for kind, fields in LAYER_FIELDS.items():
        assert f"### `{kind}`" in doc
        section = doc.split(f"### `{kind}`")[1].split("\n### ")[0]
        for name, typ in fields.items():
            assert FIELD_DOCS.get(name), name
            assert f"| `{name}` | {typ} |" in section, (kind, name)


def test_readme_links_resolve_in_the_repository() -> None:
    for md in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        text = md.read_text("utf-8")
        assert "../shared" not in text and "CONTRACT.md" not in text, md
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if re.match(r"[a-z]+:", target):
                continue
            assert (md.parent / target).exists(), (md.name, target)
