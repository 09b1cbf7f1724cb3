"""Every relative link in the README and in docs/*.md resolves.

A link ``[text](target)`` whose target is not a web or mail address must name a file or
folder that exists (relative to the linking file), and its ``#anchor``, if any, must be
one that a heading of the target markdown file (or of the same file, for a bare
``#anchor``) produces under GitHub's rule. Links inside fenced code blocks are ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) or ![alt](target); the text may wrap over lines, the target may carry
# a "title" after a space.
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    out, fence = [], ""
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            out.append("")
        elif m:
            fence = m.group(1)
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links and images read as their text,
    lower-case, everything but letters, digits, spaces, hyphens and underscores
    dropped, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor the headings of a markdown file produce, duplicates numbered
    ``-1``, ``-2``, ... as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        anchor = base if not seen[base] else f"{base}-{seen[base]}"
        seen[base] += 1
        found.add(anchor)
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every relative link outside code blocks."""
    text = prose(path.read_text(encoding="utf-8"))
    found = []
    for m in _LINK.finditer(text):
        target = m.group(2)
        if _EXTERNAL.match(target):
            continue
        found.append((text.count("\n", 0, m.start()) + 1, target))
    return found


def broken_links(path: Path) -> list[str]:
    broken, name = [], path.relative_to(REPO)
    for line, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{name}:{line}: {target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{name}:{line}: {target} (no heading #{anchor})")
    return broken


def test_slug_follows_githubs_rule():
    assert slug("Exact labels through the image's own camera (`perspective_steps`)") == (
        "exact-labels-through-the-images-own-camera-perspective_steps")
    assert slug("The paper's central claim, on synthetic data") == (
        "the-papers-central-claim-on-synthetic-data")
    assert slug("Set-up (Python 3.11, CPU is enough)") == "set-up-python-311-cpu-is-enough"


def test_duplicate_headings_are_numbered(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n```\n# Notes\n```\n\n## Notes\n\n### Notes\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}


def test_links_in_code_blocks_are_ignored(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md)\n\n```bash\n[b](also-missing.md)\n```\n"
                    "[c\nwrapped](#x) [d](https://example.com/x.md)\n")
    assert links(page) == [(1, "missing.md"), (6, "#x")]


def test_every_relative_link_resolves():
    files = doc_files()
    assert len(files) > 1, "docs/*.md is missing"
    broken = [b for path in files for b in broken_links(path)]
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken)
