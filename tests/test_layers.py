"""The layering in DESIGN.md: an import only ever points down."""
import ast
from pathlib import Path

import genrec

ROOT = Path(genrec.__file__).parent
LAYER = {
    "config": 1, "metrics": 1, "prompts": 1, "files": 1,
    "data": 2, "vision": 2,
    "modeling": 3,
    "decoding": 4, "train": 4, "evaluate": 4, "batches": 4, "baselines": 4,
    "recommender": 5,
    "serving": 6, "cli": 6, "quickstart": 6, "__main__": 7,  # the entry point only calls cli
}


def module_layer(path: Path) -> int:
    rel = path.relative_to(ROOT).with_suffix("")
    return LAYER[rel.parts[0]]


def test_no_upward_imports():
    bad = []
    for py in ROOT.rglob("*.py"):
        if py.name == "__init__.py" and py.parent == ROOT:
            continue
        mine = module_layer(py)
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genrec."):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("genrec.")]
            for n in names:
                target = LAYER[n.split(".")[1]]
                if target > mine:
                    bad.append(f"{py.relative_to(ROOT)} imports {n}")
    assert not bad, bad
