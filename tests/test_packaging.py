"""Set-up consistency: pins agree across pyproject.toml, environment.yml and requirements.lock; the repository
cites only notes it contains (docs/reference.md), and every link into them resolves."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
# Notes that live outside the repository; split so that this file does not cite them itself.
OUTSIDE_NOTES = ("shared/" + "research", "anchors" + ".md")


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for group in project["optional-dependencies"].values() for r in group]
    pins = {}
    for req in reqs:
        name, sep, version = req.partition("==")
        assert sep, f"{req!r} in pyproject.toml is not pinned with =="
        pins[name.lower()] = version
    return pins


def test_environment_yml_matches_pyproject():
    env = dict(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / "environment.yml").read_text(), re.M))
    assert {k.lower(): v for k, v in env.items()} == _pyproject_pins()


def test_lock_contains_every_direct_pin():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line)
    lock = {k.lower().replace("_", "-"): v for k, v in lock.items()}
    for name, version in _pyproject_pins().items():
        assert lock.get(name.replace("_", "-")) == version, f"requirements.lock disagrees on {name}"


def test_organism_weights_ship_small():
    weights = ROOT / "zsnb" / "organism" / "weights" / "unet.safetensors"
    assert weights.exists() and weights.stat().st_size <= 10 * 2**20


def _tracked_texts() -> dict[str, str]:
    """{path: text} of every tracked text file; a notebook contributes its cell sources only (its outputs are
    printed by the code, which is checked itself, and are refreshed when the notebook is re-executed)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    texts = {}
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        if path.suffix == ".ipynb":
            text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
        texts[name] = text
    return texts


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces become hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _reference_anchors() -> set[str]:
    headings = re.findall(r"^#+ (.+)$", REFERENCE.read_text(), re.M)
    slugs = [_slug(h) for h in headings]
    assert len(set(slugs)) == len(slugs), "two headings of docs/reference.md share an anchor; rename one"
    return set(slugs)


def test_no_tracked_file_cites_notes_outside_the_repository():
    offenders = [f"{name}: {note}" for name, text in _tracked_texts().items() for note in OUTSIDE_NOTES
                 if note in text]
    assert not offenders, f"cite docs/reference.md instead: {offenders}"


def test_links_into_the_reference_notes_resolve():
    anchors = _reference_anchors()
    texts = _tracked_texts()
    linked = 0
    for name, text in texts.items():
        for anchor in re.findall(r"reference\.md#([\w-]+)", text):
            linked += 1
            assert anchor in anchors, f"{name} links docs/reference.md#{anchor}, which is no heading there"
        for target in re.findall(r"\]\(([^)#\s]*reference\.md)[)#]", text):  # Markdown links, relative to the file
            resolved = (ROOT / name).parent.joinpath(target).resolve()
            assert resolved == REFERENCE, f"{name} links {target}, which is not docs/reference.md"
    assert linked >= 6  # the modules and notebooks that cite the notes


def test_reference_notes_own_links_resolve():
    text = REFERENCE.read_text()
    anchors = _reference_anchors()
    for anchor in re.findall(r"\]\(#([\w-]+)\)", text):
        assert anchor in anchors, f"docs/reference.md links #{anchor}, which is no heading there"
    for target in re.findall(r"\]\((\.\./[^)#\s]+)\)", text):
        assert (REFERENCE.parent / target).exists(), f"docs/reference.md links {target}, which does not exist"
