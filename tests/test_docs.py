"""The spec reference and JSON Schema are generated from the pydantic models and committed;
they must match a fresh generation (run `python -m twin.docs` after changing the schema)."""

from __future__ import annotations

import json
from pathlib import Path

from twin import docs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_reference_matches_the_schema(tmp_path):
    docs.write(tmp_path)
    assert (DOCS / "reference.md").read_text() == (tmp_path / "reference.md").read_text(), \
        "docs/reference.md is stale: run python -m twin.docs"
    assert (DOCS / "spec.schema.json").read_text() == (tmp_path / "spec.schema.json").read_text()
    for name in ("snapshot.md", "snapshot.schema.json"):
        assert (DOCS / name).read_text() == (tmp_path / name).read_text(), f"docs/{name} is stale: run python -m twin.docs"


def test_every_spec_key_is_documented():
    text = (DOCS / "reference.md").read_text() + (DOCS / "snapshot.md").read_text()
    for row in [ln for ln in text.splitlines() if ln.startswith("| `")]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 4 and cells[3], f"undocumented key: {row}"


def test_schema_accepts_duration_text_and_bare_constants():
    s = json.loads((DOCS / "spec.schema.json").read_text())
    st = s["$defs"]["Station"]["properties"]["process_time"]
    kinds = json.dumps(st)
    assert '"type": "number"' in kinds and "pattern" in kinds and "Exponential" in kinds
    assert s["title"] == "twin factory spec"


def test_how_to_pages_and_examples_exist():
    for n in ("01_three_station_line", "02_custom_dispatch", "03_pdm_recall_sweep", "04_break_even", "06_shop_floor",
              "08_buffer_allocation"):
        assert (DOCS.parent / "examples" / f"{n}.py").exists()
        assert list((DOCS / "howto").glob(f"{n[:2]}_*.md")), n
    assert (DOCS / "howto" / "05_calibrate_from_log.md").exists()  # a CLI workflow, no example script
    for page in ("getting-started.md", "background.md"):
        assert (DOCS / page).stat().st_size > 500


def _links(text: str) -> list[str]:
    """Every link and image target of a Markdown text, read by a CommonMark parser."""
    from markdown_it import MarkdownIt

    out = []
    for tok in MarkdownIt("commonmark").parse(text):
        for child in tok.children or []:
            if child.type in ("link_open", "image"):
                out.append(str(child.attrs.get("href") or child.attrs.get("src")))
    return out


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    import re

    heads = [ln.lstrip("#").strip() for ln in text.splitlines() if re.match(r"^#{1,6} ", ln)]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_in_the_markdown_resolves():
    # the repository's own pages link each other and the code; a moved file or a renamed heading
    # must not leave a reader at a dead end (external links are not fetched: CI is offline)
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", root / "CHANGELOG.md", *sorted((root / "docs").rglob("*.md")), root / "lines" / "SOURCES.md"]
    dead = []
    for page in pages:
        for href in _links(page.read_text()):
            if "://" in href or href.startswith("mailto:"):
                continue
            path, _, anchor = href.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                dead.append(f"{page.relative_to(root)}: {href} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text()):
                dead.append(f"{page.relative_to(root)}: {href} (no heading #{anchor})")
    assert not dead, "\n".join(dead)


def test_every_table_of_the_schema_has_a_section_in_the_reference():
    defs = docs.schema()["$defs"]
    assert not sorted(set(defs) - set(docs.SECTIONS)), "add them to twin.docs.SECTIONS"
