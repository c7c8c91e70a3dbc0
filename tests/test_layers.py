"""The layering in shared/DESIGN.md: an import only ever points down, and top-level modules on the
same layer never import each other (inside a package, modules may)."""
import ast
from pathlib import Path

import genrec

ROOT = Path(genrec.__file__).parent
LAYER = {
    "config": 0,
    "metrics": 1, "prompts": 1, "files": 1, "runtime": 1,
    "data": 2,
    "vision": 3, "checkpoint": 3, "baselines": 3, "claims": 3,
    "modeling": 4,
    "batches": 5, "decoding": 5,
    "evaluate": 6, "recommender": 6,
    "train": 7,
    "serving": 8, "quickstart": 8,
    "cli": 9,
}
ENTRY = "__main__"  # the entry point only calls cli


def violations(root: Path) -> list[str]:
    bad = []
    for py in sorted(root.rglob("*.py")):
        rel = py.relative_to(root).with_suffix("")
        if rel.parts in (("__init__",), (ENTRY,)):
            continue
        mine = rel.parts[0]
        if mine not in LAYER:
            bad.append(f"{rel}: not in the layer map")
            continue
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genrec."):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("genrec.")]
            for n in names:
                other = n.split(".")[1]
                if other == mine:
                    continue  # inside a package
                if other not in LAYER or LAYER[other] >= LAYER[mine]:
                    kind = "same-layer" if LAYER.get(other) == LAYER[mine] else "upward"
                    bad.append(f"{rel} imports {n} ({kind})")
    return bad


def test_imports_follow_the_layer_map():
    assert violations(ROOT) == []


def test_the_check_catches_upward_and_same_layer_imports(tmp_path):
    pkg = tmp_path / "genrec"
    (pkg / "data").mkdir(parents=True)
    (pkg / "metrics.py").write_text("from genrec.prompts import load_templates\n")      # same layer (1)
    (pkg / "data" / "loaders.py").write_text("import genrec.train\n")                   # upward (2 -> 7)
    (pkg / "recommender.py").write_text("from genrec.train import check_dataset\n")     # upward (6 -> 7)
    (pkg / "evaluate.py").write_text("from genrec.recommender import Recommender\n")    # same layer (6)
    (pkg / "train.py").write_text("from genrec.evaluate import evaluate\nfrom genrec.data.loaders import x\n")  # fine
    got = violations(pkg)
    assert got == ["data/loaders imports genrec.train (upward)", "evaluate imports genrec.recommender (same-layer)",
                   "metrics imports genrec.prompts (same-layer)", "recommender imports genrec.train (upward)"]


def test_recommender_and_quickstart_stay_below_train_and_cli():
    text = (ROOT / "recommender.py").read_text() + (ROOT / "quickstart.py").read_text()
    assert "genrec.train" not in (ROOT / "recommender.py").read_text() and "genrec.cli" not in text
