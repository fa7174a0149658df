"""The documentation holds together: a short README that names every command, every relative link and anchor in
README.md and docs/*.md leads somewhere, and docs/index.md lists every page (the facts themselves are checked by
the tests of each topic: see docs/development.md)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.docs import DOCS, README, pages

LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (a ``# comment`` in a bash block is no heading, ``[a](b)`` no link)."""
    return FENCE.sub("", text)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor in ``page``; a repeated heading gets ``-1``, ``-2``... as on GitHub."""
    found, counts = set(), {}
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page.read_text(encoding="utf-8")), re.M):
        slug = anchor(heading)
        found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
        counts[slug] = counts.get(slug, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    return [t for _, t in LINK.findall(prose(page.read_text(encoding="utf-8"))) if not re.match(r"[a-z]+:", t)]


def test_readme_is_short_and_names_every_command() -> None:
    from aeroseg_cli.commands import COMMANDS

    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move the detail into docs/"
    listed = {m.group(1) for line in lines if (m := re.match(r"- `aeroseg ([a-z-]+)", line))}
    assert listed == {c.name for c in COMMANDS}, listed ^ {c.name for c in COMMANDS}


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in pages():
        for target in relative_links(page):
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading in {dest.name})")
    assert not broken, broken


def test_the_index_lists_every_page() -> None:
    linked = {(DOCS / t.partition("#")[0]).resolve() for t in relative_links(DOCS / "index.md")}
    unlisted = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "index.md" and p.resolve() not in linked]
    assert not unlisted, f"docs/index.md does not list {unlisted}"
    assert "docs/index.md" in relative_links(README)
