"""eval/headline.py: the goal verdicts (best row vs best SASRec seed; means over seeds)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_headline():
    spec = importlib.util.spec_from_file_location("headline", ROOT / "eval" / "headline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def metrics(hr10: float) -> dict:
    return {"hr@5": hr10 / 2, "hr@10": hr10, "ndcg@5": hr10 / 4, "ndcg@10": hr10 / 3}


def genrec_json(path: Path, hr10: float, secs: float) -> str:
    path.write_text(json.dumps({"users": 10, "split": "test", "training": {"train_seconds": secs},
                                "families": {"sequential": {"seq-1": {"seen": True, **metrics(hr10),
                                                                      "candidates_from_sequential": metrics(0.6)}}}}))
    return str(path)


def baselines_json(path: Path, hr10: float, seed: int) -> str:
    path.write_text(json.dumps({"dataset": "toy", "users": 10, "protocol": "leave-one-out",
                                "popularity": {"sequential": metrics(0.08), "direct": metrics(0.3)},
                                "sasrec": {"sequential": metrics(hr10), "direct": metrics(0.65), "epochs": 10,
                                           "seed": seed, "train_seconds": 50}}))
    return str(path)


def test_means_over_seeds_and_the_best_row_give_their_own_verdicts(tmp_path, monkeypatch, capsys):
    hl = load_headline()
    monkeypatch.setattr(hl, "RESULTS", tmp_path)
    g = [genrec_json(tmp_path / f"g{i}.json", hr, 100 + 10 * i) for i, hr in enumerate((0.17, 0.18, 0.19))]
    base = baselines_json(tmp_path / "b.json", 0.186, 2020)
    other = baselines_json(tmp_path / "b2.json", 0.176, 2021)
    monkeypatch.setattr(sys, "argv", ["headline.py", "--baselines", base, "--sasrec-seed", other,
                                      "--genrec", f"best seed={g[2]}", "--genrec-seeds", "cfg=" + ",".join(g)])
    hl.main()
    out = json.loads((tmp_path / "headline_toy.json").read_text())
    rows = {r["model"]: r for r in out["rows"]}
    gm = rows["genrec: cfg, mean of 3 training seeds"]
    assert gm["sequential"]["hr@10"] == pytest.approx(0.18) and gm["hr10_sd"] == pytest.approx(0.01)
    assert gm["sequential"]["ndcg@10"] == pytest.approx(0.06) and gm["direct"]["hr@10"] == pytest.approx(0.6)
    assert gm["train_seconds"] == 110 and gm["seed_hr10"] == [0.17, 0.18, 0.19]
    sm = rows["SASRec (RecBole), mean of 2 seeds"]
    assert sm["sequential"]["hr@10"] == pytest.approx(0.181) and sm["hr10_sd"] == pytest.approx(0.01 / 2 ** 0.5)
    md = (tmp_path / "headline_toy.md").read_text()
    # the best genrec row (0.19) beats the best SASRec seed (0.186); the means (0.180 vs 0.181) do not
    assert "(the best of 2 SASRec seeds): **met** (0.1900 vs 0.1860" in md
    assert "(genrec: cfg, mean of 3 training seeds vs SASRec (RecBole), mean of 2 seeds): **not met** " \
           "(0.1800 vs 0.1810)" in md
    assert "HR@10 per seed 0.1700, 0.1800, 0.1900 (sample SD 0.0100)" in md
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["headline.py", "--baselines", base, "--genrec-seeds", f"cfg={g[0]}"])
    with pytest.raises(SystemExit):
        hl.main()
    assert "two or more runs" in capsys.readouterr().err


def test_an_argument_file_gives_the_same_table_and_rows_name_their_sources(tmp_path, monkeypatch, capsys):
    hl = load_headline()
    monkeypatch.setattr(hl, "RESULTS", tmp_path)
    g = [genrec_json(tmp_path / f"g{i}.json", hr, 100) for i, hr in enumerate((0.17, 0.19))]
    base = baselines_json(tmp_path / "b.json", 0.186, 2020)
    args = ["--baselines", base, "--genrec", f"one, with a comma={g[0]}", "--genrec-seeds", "cfg=" + ",".join(g)]
    monkeypatch.setattr(sys, "argv", ["headline.py", *args])
    hl.main()
    direct = (tmp_path / "headline_toy.md").read_text()
    (tmp_path / "headline_toy.md").unlink()
    (tmp_path / "h.args").write_text("\n".join(args) + "\n")  # one argument per line, spaces kept
    monkeypatch.setattr(sys, "argv", ["headline.py", f"@{tmp_path / 'h.args'}"])
    hl.main()
    assert (tmp_path / "headline_toy.md").read_text() == direct
    rows = {r["model"]: r for r in json.loads((tmp_path / "headline_toy.json").read_text())["rows"]}
    assert rows["genrec: one, with a comma"]["source"] == g[0]
    assert rows["genrec: cfg, mean of 2 training seeds"]["sources"] == g
