"""The documentation says only what is there: every `zsnb.…` and `experiments.…` name in README.md and docs/*.md
resolves, every `python -m zsnb …` line shown parses with the real parser, every repository path and link target
mentioned exists, and both commands' --help list every backbone that works."""

from __future__ import annotations

import glob
import importlib
import re
import shlex
from pathlib import Path

import pytest

from zsnb import cli, evaluate, registry
from zsnb.backbones import KNOWN_NAMES

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("zsnb", "tests", "benchmarks", "docs", "experiments", "notebooks", "figures")  # tracked folders
FILES = ("Makefile", "pyproject.toml", "requirements.lock", "environment.yml")  # tracked top-level files


def texts() -> dict[str, str]:
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in DOCS}


def dotted_names() -> list[tuple[str, str]]:
    """(document, name) for every zsnb.x.y or experiments.x.y written in the documents."""
    found = []
    for doc, text in texts().items():
        for m in re.finditer(r"(?<![\w./-])((?:zsnb|experiments)(?:\.[A-Za-z_]\w*)+)", text):
            found.append((doc, m[1]))
    return sorted(set(found))


def resolve(name: str) -> object:
    """Import the longest module prefix of `name`, then getattr the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


@pytest.mark.parametrize(("doc", "name"), dotted_names())
def test_every_dotted_name_resolves(doc, name):
    try:
        resolve(name)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{doc} names {name}, which does not resolve: {err}")


def command_lines() -> list[tuple[str, list[str]]]:
    """(document, argv after `zsnb`) for every `python -m zsnb …` / `-m zsnb …` line, continuations joined."""
    found = []
    for doc, text in texts().items():
        joined = re.sub(r"\\\n\s*", " ", text)
        for m in re.finditer(r"-m zsnb ((?:segment|evaluate)(?:\|\w+)?(?=[\s`])[^\n`]*)", joined):
            line = re.split(r"\s(?:#|&|;|\|\s)", m[1])[0]  # up to a comment or another shell command
            argv = shlex.split(line)
            if len(argv) == 1:  # the command named in a sentence, not a command line
                continue
            for command in argv[0].split("|"):  # "segment|evaluate --method ..." shows both
                found.append((doc, [command, *argv[1:]]))
    return found


@pytest.mark.parametrize(("doc", "argv"), command_lines(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_command_shown_parses(doc, argv, monkeypatch):
    """Every flag and choice parses; a registered method's --set values pass its record's check too: `main`
    runs with the work itself stubbed out, so no model is loaded."""
    parser, _ = cli._parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as err:
        if err.code == 0:  # --help
            return
        pytest.fail(f"{doc}: `python -m zsnb {' '.join(argv)}` does not parse (exit {err.code})")
    if args.method not in registry.REGISTRY:  # a method the text invents (README: adding a method)
        return
    calls = []
    monkeypatch.setattr(cli, "segment_paths", lambda *a, **k: calls.append(a) or {"done": 0, "skipped": 0,
                                                                                     "other": 0, "failed": {}})
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: calls.append(a))
    try:
        assert cli.main(argv) == 0
    except SystemExit as err:
        pytest.fail(f"{doc}: `python -m zsnb {' '.join(argv)}` is refused (exit {err.code})")
    assert len(calls) == (0 if args.show_params else 1)


def test_the_documents_show_both_commands():
    commands = {argv[0] for _, argv in command_lines()}
    assert commands == {"segment", "evaluate"}


def mentioned_paths() -> list[tuple[str, str]]:
    """(document, path) for repository paths written in the text and for relative Markdown link targets."""
    found = []
    for doc, text in texts().items():
        folder = (ROOT / doc).parent
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):  # links: relative to the document
            target = m[1]
            if not re.match(r"[a-z]+:", target):
                path, _, anchor = target.partition("#")
                where = (folder / path).resolve() if path else ROOT / doc
                found.append((doc, where.relative_to(ROOT).as_posix() + (f"#{anchor}" if anchor else "")))
        pattern = r"(?<![\w/.<-])((?:" + "|".join(TOP) + r")/[\w./*-]*|(?:" + "|".join(FILES) + r")\b)"
        for m in re.finditer(pattern, text):
            path = m[1].rstrip(".,")
            if "NAME" not in path and "<" not in path:
                found.append((doc, path))
    return sorted(set(found))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


@pytest.mark.parametrize(("doc", "path"), mentioned_paths())
def test_every_repository_path_mentioned_exists(doc, path):
    path, _, anchor = path.partition("#")
    if "*" in path:
        assert glob.glob(str(ROOT / path)), f"{doc} mentions {path}, which matches no file"
        return
    assert (ROOT / path).exists(), f"{doc} mentions {path}, which does not exist"
    if anchor:
        headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.M)
        assert anchor in {slug(h) for h in headings}, f"{doc} links {path}#{anchor}: no such heading"


def test_help_of_both_commands_lists_every_backbone(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside hyphenated names
    _, commands = cli._parser()
    for name, sub in commands.items():
        text = sub.format_help()
        missing = [b for b in KNOWN_NAMES if b not in text]
        assert not missing, f"`python -m zsnb {name} --help` does not list {missing}"
    assert "vit-s" in KNOWN_NAMES


def module_commands() -> list[tuple[str, str]]:
    """(document, module) for every `python -m package.module` shown (`python -m zsnb.evaluate` no longer runs)."""
    found = set()
    for doc, text in texts().items():
        found |= {(doc, m[1]) for m in re.finditer(r"-m ((?:zsnb|experiments)\.[\w.]+)", text)}
    return sorted(found)


@pytest.mark.parametrize(("doc", "module"), module_commands())
def test_every_module_run_with_python_m_has_a_main(doc, module):
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{doc} runs `python -m {module}`, which does not exist"
    source = Path(spec.origin)
    if source.name == "__init__.py":
        source = source.with_name("__main__.py")
    assert source.is_file() and "__main__" in source.read_text(), f"{doc}: `python -m {module}` has no main"
