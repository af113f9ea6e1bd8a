"""The notebooks read as a tutorial: word budgets, short sentences, numbers in the text, references, honest runs.

Main-line words are markdown outside <details> blocks, code spans, links' targets and tables; a sentence is
text up to '.', '!' or '?' followed by white space.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAIN_WORDS = 9_000  # all notebooks together
DETAILS_WORDS = 3_000
LONG_SENTENCE = 40  # words
MAX_LONG_SENTENCES = 10  # all notebooks together
POINTERS = re.compile(r"printed above|see above|shown above|the printed|above output|issue #|#\d{2}\b", re.I)
DETAILS = re.compile(r"<details>.*?</details>", re.S)


def _markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def _prose(text: str) -> str:
    """Markdown -> plain prose: no code blocks, tables, html tags, link targets, code spans or maths."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"</?[A-Za-z][^<>\n]*>", " ", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", "x", text)
    return re.sub(r"`[^`]*`", "x", text)


def _split(path: Path) -> tuple[str, str]:
    """(main-line prose, prose inside <details>) of one notebook."""
    md = "\n\n".join(_markdown(path))
    return _prose(DETAILS.sub(" ", md)), _prose(" ".join(DETAILS.findall(md)))


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][\w'’.,/×±+-]*", text))


def long_sentences(text: str) -> list[str]:
    """Sentences of text with more than LONG_SENTENCE words."""
    text = re.sub(r"\b(e\.g|i\.e|vs|et al|cf|Fig|Eq)\.", r"\1", text)
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n|\n\s*[-*#>]\s|\n\s*\d+\.\s", text)
    return [p for p in parts if _words(p) > LONG_SENTENCE]


def test_word_budgets():
    main = {p.name: _words(_split(p)[0]) for p in NOTEBOOKS}
    details = sum(_words(_split(p)[1]) for p in NOTEBOOKS)
    assert sum(main.values()) <= MAIN_WORDS, main
    assert details <= DETAILS_WORDS


def test_few_long_sentences():
    found = {p.name: long_sentences(_split(p)[0]) for p in NOTEBOOKS}
    assert sum(map(len, found.values())) <= MAX_LONG_SENTENCES, {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_pointers_or_internal_names(path):
    hits = [m.group(0) for text in _markdown(path) for m in POINTERS.finditer(text)]
    assert not hits, hits


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opens_and_closes_like_a_tutorial(path):
    md = _markdown(path)
    opening = md[0].lower()
    for term in ("you will learn", "assumes", "run time"):
        assert term in opening, f"{path.name}: the first cell should say '{term}'"
    tail = "\n".join(md[-3:]).lower()
    assert "takeaways" in tail, f"{path.name}: end with three takeaways"
    refs = [t for t in md if t.lstrip().lower().startswith("## references")]
    assert refs and "https://" in refs[0], f"{path.name}: a '## References' cell with links"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_says_what_ran_and_stores_no_empty_widgets(path):
    cells = json.loads(path.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("**What ran:**" in "".join(o.get("data", {}).get("text/markdown", "")) for o in outputs), \
        f"{path.name}: display viz.what_ran(backbone, weights)"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{path.name}: stored widget placeholders"
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert not re.search(r"\b0/\d+ \[", text), f"{path.name}: a stored progress bar that never moved"


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.parametrize("path", sorted((ROOT / "figures").glob("*.png")), ids=lambda p: p.stem)
def test_figures_legible_and_light(path):
    assert max(_png_size(path)) >= 900, f"{path.name} is {_png_size(path)} px"
    assert path.stat().st_size <= 1_000_000, f"{path.name} is {path.stat().st_size} bytes"
