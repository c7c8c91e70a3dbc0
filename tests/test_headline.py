"""eval/ledger.py and eval/headline.py: ledger rows and their selection labels, the generated table,
and the paired comparison on result files whose per-user ranks are set by hand."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    sys.path.insert(0, str(ROOT / "eval"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "eval" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def ranks_metrics(ranks):
    from genrec.metrics import ranking_metrics
    return ranking_metrics(ranks)


def genrec_file(path: Path, ranks, seed: int, recipe: str, ties="pessimistic", valid=(0.2,)):
    users = [str(u) for u in range(len(ranks))]
    res = {"dataset": "toy", "split": "test", "users": len(ranks), "families": {"sequential": {"seq-1": {
        "seen": True, **ranks_metrics(ranks), "users": len(ranks), "per_user": {"users": users, "ranks": ranks}}}},
        "users_per_s": 5.0, "training": {"command": f"genrec train {recipe} --data d --out o --train.seed {seed} "
                                                    f"--threads 1", "train_seconds": 100.0,
                                         "valid_by_step": [{"step": 1, "hr@10": v} for v in valid]}}
    if ties:
        res["ties"] = ties
    path.write_text(json.dumps(res))


def baseline_file(path: Path, model: str, ranks, seed: int, converged=True, valid_ndcg=0.1):
    users = [str(u) for u in range(len(ranks))]
    seq = {**ranks_metrics(ranks), "users": len(ranks), "per_user": {"users": users, "ranks": ranks}}
    path.write_text(json.dumps({"kind": "baseline", "dataset": "toy", "model": model, "seed": seed, "max_len": 50,
                                "patience": 5, "converged": converged, "train_seconds": 10.0,
                                "valid_curve": [{"epoch": 1, "hr@10": 0.1, "ndcg@10": valid_ndcg}],
                                "test": {"sequential": seq, "users_per_s": 100.0}}))


def build_headline(root: Path, ledger, headline, monkeypatch) -> dict:
    """Rebuild the toy world's ledger, then its headline (as the two scripts run); the headline's JSON."""
    monkeypatch.setattr(sys, "argv", ["ledger.py"])
    ledger.main()
    monkeypatch.setattr(sys, "argv", ["headline.py", "toy"])
    headline.main()
    return json.loads((root / "eval" / "results" / "headline_toy.json").read_text())


@pytest.fixture
def world(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "eval" / "runs").mkdir(parents=True)
    (tmp_path / "eval" / "results").mkdir()
    plan = {"toy": {"genrec": [{"recipe": "adapters/r.yaml", "seeds": [0, 1]}]}}
    (tmp_path / "eval" / "plan.yaml").write_text(yaml.safe_dump(plan))
    ledger, headline = load("ledger"), load("headline")
    monkeypatch.setattr(ledger, "ROOT", tmp_path)
    monkeypatch.setattr(ledger, "LEDGER", tmp_path / "eval" / "runs.csv")
    monkeypatch.setattr(ledger, "SOURCES", (tmp_path / "eval" / "runs", tmp_path / "eval" / "results"))
    monkeypatch.setattr(headline, "ROOT", tmp_path)
    return tmp_path, ledger, headline


def test_ledger_labels_how_each_run_was_chosen(world, monkeypatch):
    root, ledger, _ = world
    runs = root / "eval" / "runs"
    genrec_file(runs / "g0.json", [0, 20, 3, 50], 0, "adapters/r.yaml")          # pre-registered
    genrec_file(runs / "g5.json", [0, 20, 3, 50], 5, "adapters/r.yaml")          # seed not in the plan
    genrec_file(runs / "old.json", [0, 1, 2, 3], 0, "adapters/r.yaml", ties=None)  # before the plan
    baseline_file(runs / "b.json", "sasrec", [1, 30, 2, 9], 0, converged=False)
    monkeypatch.setattr(sys, "argv", ["ledger.py"])
    ledger.main()
    rows = {r["result_file"]: r for r in ledger.read(root / "eval" / "runs.csv")}
    assert rows["eval/runs/g0.json"]["selected_by"] == "valid"
    assert rows["eval/runs/g5.json"]["selected_by"] == "test"
    assert rows["eval/runs/old.json"]["selected_by"] == "test" and rows["eval/runs/old.json"]["ties"] == "first"
    assert rows["eval/runs/g0.json"]["config"] == "adapters/r.yaml" and rows["eval/runs/g0.json"]["seed"] == "0"
    assert rows["eval/runs/g0.json"]["hr@10"] == "0.5000"  # ranks 0 and 3 hit of 4
    assert rows["eval/runs/b.json"]["converged"] == "false" and rows["eval/runs/b.json"]["selected_by"] == "valid"
    assert set(rows["eval/runs/g0.json"]) == set(ledger.COLUMNS)


def test_probes_are_validation_rows_that_the_headline_leaves_out(world, monkeypatch):
    root, ledger, headline = world
    runs = root / "eval" / "runs"
    genrec_file(runs / "g0.json", [0, 20, 3, 50], 0, "adapters/r.yaml")
    genrec_file(runs / "g1.json", [1, 2, 30, 40], 1, "adapters/r.yaml")
    baseline_file(runs / "b.json", "sasrec", [1, 30, 2, 9], 0)
    (runs / "p.json").write_text(json.dumps({"kind": "probes", "dataset": "toy", "probes": [
        {"probe": "A", "command": "genrec train adapters/r.yaml --data d --model.layers 4 --train.seed 0 --threads 1 "
                                  "--out o", "train_seconds": 30.5, "users": 4,
         "valid": [{"step": 5, "hr@10": 0.25, "ndcg@10": 0.125}, {"step": 10, "hr@10": 0.75, "ndcg@10": 0.5}]}]}))
    out = build_headline(root, ledger, headline, monkeypatch)
    rows = [r for r in ledger.read(root / "eval" / "runs.csv") if r["result_file"] == "eval/runs/p.json"]
    assert len(rows) == 1
    r = rows[0]
    assert (r["split"], r["selected_by"], r["seed"]) == ("valid", "probe", "0")
    assert r["config"] == "adapters/r.yaml --model.layers 4"
    assert (r["hr@10"], r["ndcg@10"], r["hr@5"], r["train_seconds"]) == ("0.7500", "0.5000", "", "30.5")  # last step
    assert all("--model.layers 4" not in row["config"] for row in out["rows"])  # the table is test rows only


def test_first_commit_follows_moves_but_not_resemblance(world):
    root, ledger, _ = world

    def commit(msg):
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", msg], cwd=root,
                       check=True)
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()

    runs, results = root / "eval" / "runs", root / "eval" / "results"
    body = "".join(f'{{"user": {u}, "rank": {u * 7 % 13}}}\n' for u in range(200))
    (runs / "old.json").write_text(body)
    first = commit("old result")
    (runs / "old.json").rename(runs / "moved.json")
    commit("rename it")
    (runs / "new.json").write_text(body + "".join(f'{{"user": {u}, "rank": 1}}\n' for u in range(30)))
    second = commit("a new run that resembles the old one")
    assert ledger.first_commit(runs / "moved.json") == first  # produced by the commit that added old.json
    assert ledger.first_commit(runs / "new.json") == second  # not credited to the file it resembles
    (results / "table.json").write_text(body)
    commit("a table")
    (results / "table.json").write_text(body.replace('"rank": 1}', '"rank": 2}'))
    remeasured = commit("the table re-measured in place")
    (results / "table.json").rename(runs / "table_before.json")
    (runs / "table_before.json").write_text(body.replace('"rank": 1}', '"rank": 2}') + '{"note": "old"}\n')
    (results / "table.json").write_text(body.replace('"rank": 1}', '"rank": 3}'))
    third = commit("the old table kept under runs/, a new one in its place")
    (results / "table.json").write_text(body.replace('"rank": 1}', '"rank": 3}') + '{"note": "a label"}\n')
    commit("a label added")
    assert ledger.first_commit(results / "table.json") == third  # the label did not re-measure it
    assert ledger.first_commit(runs / "table_before.json") == remeasured
    (runs / "later.json").write_text("{}")
    assert ledger.first_commit(runs / "later.json") == "uncommitted"


def test_config_of_keeps_the_recipe_and_overrides_only():
    ledger = load("ledger")
    cfg, seed = ledger.config_of("genrec train adapters/x.yaml --data d --items.dropout 0.3 --train.seed 4 "
                                 "--threads 1 --out runs/a --items.mask_seen=true; genrec evaluate runs/a/best")
    assert cfg == "adapters/x.yaml --items.dropout 0.3 --items.mask_seen true" and seed == 4


def test_headline_pairs_genrec_seeds_with_the_best_validated_baseline(world, monkeypatch):
    root, ledger, headline = world
    runs = root / "eval" / "runs"
    n = 400
    # genrec hits users 0-199 at both seeds; SASRec hits 0-99, RecBole (worse on validation) hits all
    genrec_file(runs / "g0.json", [0] * 200 + [500] * 200, 0, "adapters/r.yaml", valid=(0.3,))
    genrec_file(runs / "g1.json", [0] * 200 + [500] * 200, 1, "adapters/r.yaml", valid=(0.2,))
    baseline_file(runs / "s0.json", "sasrec", [2] * 100 + [99] * 300, 0, valid_ndcg=0.2)
    baseline_file(runs / "r0.json", "recbole", [1] * n, 0, valid_ndcg=0.1)
    baseline_file(runs / "p0.json", "pop", [50] * n, 0)
    out = build_headline(root, ledger, headline, monkeypatch)
    c = out["comparison"]
    assert c["baseline"].startswith("SASRec+") and c["users"] == n
    assert c["diff_hr@10"] == pytest.approx(0.25)  # 200/400 - 100/400
    # every user's difference is 0 or 1 (hits 100-199): mean 0.25, bootstrap SE sqrt(.25 * .75 / 400)
    assert c["ci95"][0] == pytest.approx(0.25 - 1.96 * 0.02165, abs=0.01)
    assert c["ci95"][1] == pytest.approx(0.25 + 1.96 * 0.02165, abs=0.01)
    assert c["verdict"] == "ahead"
    g = next(r for r in out["rows"] if r["model"].startswith("genrec"))
    assert g["seeds"] == [0, 1] and g["selected_by"] == "valid" and g["hr@10"] == pytest.approx(0.5)
    s = next(r for r in out["rows"] if r["model"].startswith("SASRec+"))
    assert s["converged"] is True
    md = (root / "eval" / "results" / "headline_toy.md").read_text()
    assert "**ahead**" in md and md.count("\n| ") <= 9  # header + at most 8 rows


def test_two_entries_with_one_recipe_keep_their_own_result_files(world, monkeypatch):
    """A configuration run again after a bug fix: same recipe, its own files (`results`) and label;
    the comparison takes the entry that validates higher, whatever its test number."""
    root, ledger, headline = world
    plan = {"toy": {"genrec": [
        {"recipe": "adapters/r.yaml", "seeds": [0], "results": "eval/runs/bug_", "label": "genrec: with the bug"},
        {"recipe": "adapters/r.yaml", "seeds": [0], "results": "eval/runs/fixed_", "label": "genrec: fixed"}]}}
    (root / "eval" / "plan.yaml").write_text(yaml.safe_dump(plan))
    runs = root / "eval" / "runs"
    genrec_file(runs / "bug_seed0.json", [0] * 300 + [500] * 100, 0, "adapters/r.yaml", valid=(0.2,))
    genrec_file(runs / "fixed_seed0.json", [0] * 100 + [500] * 300, 0, "adapters/r.yaml", valid=(0.3,))
    baseline_file(runs / "s0.json", "sasrec", [0] * 200 + [99] * 200, 0)
    out = build_headline(root, ledger, headline, monkeypatch)
    rows = {r["model"]: r for r in out["rows"]}
    assert rows["genrec: with the bug"]["hr@10"] == pytest.approx(0.75)  # its file only, not the mean of both
    assert rows["genrec: fixed"]["hr@10"] == pytest.approx(0.25)
    assert out["comparison"]["genrec"] == "genrec: fixed"  # validated higher, tested lower
    assert out["comparison"]["diff_hr@10"] == pytest.approx(-0.25) and out["comparison"]["verdict"] == "behind"


def test_the_readme_shows_the_headline_tables_as_generated():
    """README's results rows are the generated ones (eval/headline.py from the ledger), verbatim."""
    readme = (ROOT / "README.md").read_text()
    for ds in ("movielens-100k", "movielens-1m"):
        md = (ROOT / "eval" / "results" / f"headline_{ds}.md").read_text()
        table = [line for line in md.splitlines() if line.startswith("|")]  # header, separator, rows
        assert len(table) > 2 and "\n".join(table) in readme, ds  # the whole table, as one block


def test_a_configuration_with_registered_seeds_still_to_run_is_marked_provisional(world, monkeypatch):
    root, ledger, headline = world  # the plan registers seeds 0 and 1; only seed 0 has run
    runs = root / "eval" / "runs"
    genrec_file(runs / "g0.json", [0] * 200 + [500] * 200, 0, "adapters/r.yaml")
    baseline_file(runs / "s0.json", "sasrec", [2] * 100 + [99] * 300, 0)
    out = build_headline(root, ledger, headline, monkeypatch)
    assert out["comparison"]["seeds_to_run"] == [1]
    md = (root / "eval" / "results" / "headline_toy.md").read_text()
    assert "| 0 of 0,1 |" in md and "Provisional: registered seed(s) 1 of" in md


def test_rows_past_the_eighth_are_named_not_dropped_silently(world, monkeypatch):
    root, ledger, headline = world
    entries = [{"recipe": "adapters/r.yaml", "seeds": [0], "results": f"eval/runs/c{i}_", "label": f"genrec: c{i}"}
               for i in range(9)]
    (root / "eval" / "plan.yaml").write_text(yaml.safe_dump({"toy": {"genrec": entries}}))
    runs = root / "eval" / "runs"
    for i in range(9):
        genrec_file(runs / f"c{i}_seed0.json", [0] * 10 + [500] * 10, 0, "adapters/r.yaml", valid=(0.1 + i / 100,))
    baseline_file(runs / "s0.json", "sasrec", [0] * 20, 0)
    out = build_headline(root, ledger, headline, monkeypatch)
    # SASRec+, then c8..c2 (best validated first); the two lowest validated are named below the table
    assert [r["model"] for r in out["rows"]] == ["SASRec+ (RecTools, softmax, early-stopped)"] + [
        f"genrec: c{i}" for i in range(8, 1, -1)]
    assert out["omitted"] == ["genrec: c1", "genrec: c0"]
    assert out["comparison"]["genrec"] == "genrec: c8"
    md = (root / "eval" / "results" / "headline_toy.md").read_text()
    assert "Not shown (rows of eval/runs.csv): genrec: c1; genrec: c0." in md


def test_an_ensemble_is_one_row_chosen_by_its_own_validation(world, monkeypatch):
    """`genrec evaluate A B`: one ledger row named by its members' seeds, the longest member's training
    time (they ran side by side), and its own validation file, not a member's, for the choice."""
    root, ledger, headline = world
    ens = "ensemble of seeds 0+1: adapters/r.yaml"
    plan = {"toy": {"genrec": [{"recipe": "adapters/r.yaml", "seeds": [0, 1]},
                               {"recipe": ens, "seeds": [0], "label": "genrec: ensemble"}]}}
    (root / "eval" / "plan.yaml").write_text(yaml.safe_dump(plan))
    runs = root / "eval" / "runs"
    genrec_file(runs / "g0.json", [0] * 100 + [500] * 300, 0, "adapters/r.yaml", valid=(0.3,))
    genrec_file(runs / "g1.json", [0] * 100 + [500] * 300, 1, "adapters/r.yaml", valid=(0.2,))
    for split, ranks in (("test", [0] * 200 + [500] * 200), ("valid", [0] * 160 + [500] * 240)):
        f = runs / f"ens_{split}.json"
        genrec_file(f, ranks, 0, "adapters/r.yaml", valid=(0.3,))  # the first member's training record
        res = json.loads(f.read_text())
        res["split"] = split
        res["ensemble"] = {"seeds": [0, 1], "training": [{"train_seconds": 100.0}, {"train_seconds": 150.0}]}
        f.write_text(json.dumps(res))
    baseline_file(runs / "s0.json", "sasrec", [0] * 100 + [99] * 300, 0)
    out = build_headline(root, ledger, headline, monkeypatch)
    rows = {r["result_file"]: r for r in ledger.read(root / "eval" / "runs.csv")}
    e = rows["eval/runs/ens_test.json"]
    assert (e["config"], e["seed"], e["selected_by"], e["train_seconds"]) == (ens, "0", "valid", "150.0")
    assert rows["eval/runs/ens_valid.json"]["split"] == "valid"
    table = {r["model"]: r for r in out["rows"]}
    assert table["genrec: ensemble"]["valid_hr10"] == pytest.approx(0.4)  # 160 of 400, not the member's 0.3
    assert table["genrec: ensemble"]["hr@10"] == pytest.approx(0.5)
    assert out["comparison"]["genrec"] == "genrec: ensemble" and out["comparison"]["diff_hr@10"] == pytest.approx(0.25)


def test_every_registered_configuration_is_a_recipe_genrec_train_accepts():
    """A registered row is rebuilt from its `recipe` string: a renamed key or a typo would make it unrunnable."""
    from genrec.cli.base import parse_overrides
    from genrec.config import load_recipe
    plan = yaml.safe_load((ROOT / "eval" / "plan.yaml").read_text())
    entries = [e for ds in plan.values() if isinstance(ds, dict) for e in ds.get("genrec") or []]
    assert len(entries) >= 10
    for e in entries:
        path, *overrides = e["recipe"].split(": ")[-1].split()  # "ensemble of seeds 0+1: <recipe>" too
        recipe = load_recipe(ROOT / path, parse_overrides(overrides))
        assert e["seeds"] and all(isinstance(s, int) for s in e["seeds"]), e["recipe"]
        if "--model.layers" in overrides:
            assert recipe.model.layers == int(overrides[overrides.index("--model.layers") + 1])
