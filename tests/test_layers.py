"""The package's layers, read from its import statements (function-level imports included).

    base        errors, precision, images, world, metrics, photos
    algorithms  diffseg, diffcut, pamr, randomwalk, hierarchy, timemap, similarity     (tensors in, tensors out)
    backbones   protocol, extract, backbones, vit, memory, organism            (capture(images, needs))
    seam        parameters, registry, harness                                  (records, adaptors, grids)
    faces       worldeval, data, evaluate, cli, viz, ncut_viz, __init__, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zsnb

ROOT = Path(zsnb.__file__).parent
LAYERS: dict[str, set[str]] = {
    "base": {"errors", "precision", "images", "world", "metrics", "photos"},
    "algorithms": {"diffseg", "diffcut", "pamr", "randomwalk", "hierarchy", "timemap", "similarity"},
    "backbones": {"protocol", "extract", "backbones", "vit", "memory", "organism", "organism.train"},
    "seam": {"parameters", "registry", "harness"},
    "faces": {"worldeval", "data", "evaluate", "cli", "viz", "ncut_viz", "__init__", "__main__"},
}


def module_name(path: Path) -> str:
    """zsnb/organism/__init__.py -> "organism"; zsnb/organism/train.py -> "organism.train"."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports(path: Path) -> set[str]:
    """Every module this file imports, by full dotted name ("zsnb.diffseg", "experiments.tune", "torch")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "zsnb":  # from zsnb import diffseg, registry
                found |= {f"zsnb.{a.name}" for a in node.names if (ROOT / a.name).exists()
                          or (ROOT / f"{a.name}.py").exists()}
    return found


def graph() -> dict[str, set[str]]:
    """{module: zsnb modules it imports} over every file of the package."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    out = {}
    for name, path in modules.items():
        deps = {m.removeprefix("zsnb.") for m in imports(path) if m.startswith("zsnb.")}
        out[name] = {d for d in deps if d in modules and d != name}
    return out


def layer(module: str) -> str:
    """The layer of a module; every module of the package belongs to one."""
    for name, members in LAYERS.items():
        if module in members:
            return name
    raise AssertionError(f"zsnb.{module} is in no layer; add it to LAYERS in {Path(__file__).name}")


@pytest.mark.parametrize("module", sorted(graph()))
def test_every_module_belongs_to_a_layer_and_imports_only_downwards(module):
    deps = graph()[module]
    here = layer(module)
    allowed = {"base": {"base"}, "algorithms": {"base", "algorithms"}, "backbones": {"base", "backbones"},
               "seam": {"base", "algorithms", "backbones", "seam"}}.get(here)
    if allowed is not None:
        wrong = sorted(f"{d} ({layer(d)})" for d in deps if layer(d) not in allowed)
        assert not wrong, f"zsnb.{module} ({here}) imports {wrong}"


def test_nothing_in_the_package_imports_experiments_or_benchmarks():
    for path in ROOT.rglob("*.py"):
        outside = sorted(m for m in imports(path) if m.split(".")[0] in ("experiments", "benchmarks"))
        assert not outside, f"{path.relative_to(ROOT.parent)} imports {outside}"


def test_the_package_has_no_import_cycle():
    deps = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for d in sorted(deps[module]):
            assert state.get(d) != 1, "import cycle: " + " -> ".join(path[path.index(d):] + [module, d])
            if d not in state:
                visit(d, path + [d])
        state[module] = 2

    for module in sorted(deps):
        if module not in state:
            visit(module, [module])


def test_the_checks_see_a_violation():
    """The graph is read from the code: a known edge is there, so an empty graph cannot pass silently."""
    deps = graph()
    assert "protocol" in deps["vit"] and "registry" in deps["harness"] and "diffseg" in deps["randomwalk"]
