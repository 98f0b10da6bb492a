"""The method notes (docs/*.md, examples/README.md) as HTML, rendered once per process.

markdown-it-py in CommonMark mode with tables, raw HTML off (any `<...>` in the notes comes out
escaped). Headings get ids so the about page can link to them, and links between the notes
point at their sections on the same page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

from core.settings import REPO_ROOT

EXAMPLES_DIR = REPO_ROOT / "examples"


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    title: str
    source: str  # path in the repository
    html: str  # rendered, safe to insert as is


_DOCS = (
    ("cost", "docs/cost.md"),
    ("ranking", "docs/ranking.md"),
    ("leaderboard", "docs/leaderboard.md"),
    ("verification", "docs/verification.md"),
    ("model-files", "examples/README.md"),
)
_LINKS = {
    "cost.md": "#cost",
    "docs/cost.md": "#cost",
    "ranking.md": "#ranking",
    "docs/ranking.md": "#ranking",
    "leaderboard.md": "#leaderboard",
    "docs/leaderboard.md": "#leaderboard",
    "examples/README.md": "#model-files",
    "verification.md": "#verification",
    "docs/verification.md": "#verification",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


def _render(doc_id: str, text: str) -> tuple[str, str]:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    tokens = md.parse(text)
    title = doc_id
    seen: set[str] = set()
    drop: set[int] = set()
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            content = tokens[i + 1].content
            if token.tag == "h1":
                # The page shows each note's title in its own heading: drop the note's h1.
                title = content
                drop.update((i, i + 1, i + 2))
                continue
            slug = f"{doc_id}-{_slug(content)}"
            while slug in seen:
                slug += "-x"
            seen.add(slug)
            token.attrSet("id", slug)
            # The page's sections are h2: the notes' headings go one level down.
            level = min(int(token.tag[1]) + 1, 6)
            token.tag = tokens[i + 2].tag = f"h{level}"
        elif token.type == "inline" and token.children:
            for child in token.children:
                href = str(child.attrGet("href") or "") if child.type == "link_open" else ""
                if href in _LINKS:
                    child.attrSet("href", _LINKS[href])
        elif token.type == "table_open":
            token.attrSet("class", "doc-table")
        elif token.type == "th_open":
            token.attrSet("scope", "col")
    kept = [t for i, t in enumerate(tokens) if i not in drop]
    return title, md.renderer.render(kept, md.options, {})


@cache
def docs() -> tuple[Doc, ...]:
    """The rendered notes (read from the repository once; missing files are skipped)."""
    out = []
    for doc_id, source in _DOCS:
        path = REPO_ROOT / source
        if not path.is_file():
            continue
        title, html = _render(doc_id, path.read_text(encoding="utf-8"))
        out.append(Doc(doc_id, title, source, html))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ExampleFile:
    name: str
    summary: str
    url: str


def _summary(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.match(r'\s*"""(.*?)(?:\n|""")', text)
    return match.group(1).strip() if match else ""


@cache
def example_files() -> tuple[ExampleFile, ...]:
    """The example model files, offered for download on the about page."""
    if not EXAMPLES_DIR.is_dir():
        return ()
    return tuple(
        ExampleFile(p.name, _summary(p), f"/about/examples/{p.name}")
        for p in sorted(EXAMPLES_DIR.glob("*.py"))
    )


def example_path(name: str) -> Path | None:
    """The example file called `name`, if it is one of them (never any other path)."""
    for example in example_files():
        if example.name == name:
            return EXAMPLES_DIR / example.name
    return None
