"""Two checkpoints of one recipe ranked as one (genrec.modeling.ensemble)."""
import json

import numpy as np
import pytest
import torch

from genrec.modeling.model import GenRecModel
from genrec.train import train
from tests.helpers import cyclic_dataset, tiny_recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ens")
    data = cyclic_dataset(tmp)
    for seed in (0, 1):
        train(tiny_recipe(steps=6, seed=seed), data, tmp / f"s{seed}", progress=False)
    train(tiny_recipe(steps=6, seed=0, lr=1e-2), data, tmp / "other", progress=False)
    train(tiny_recipe(steps=2, item_tokens="text"), data, tmp / "text", progress=False)
    return tmp, data


def _seq(model, ds):
    from genrec.evaluate import evaluate
    res = evaluate(model, ds, None, "test", None, ("sequential", "direct"), "first-seen", 4, progress=False)
    fams = res["families"]
    return (fams["sequential"]["seq-1"]["per_user"]["ranks"], fams["direct"][next(iter(fams["direct"]))]["per_user"]["ranks"])


def test_ensemble_ranks_by_the_mean_log_probability(runs):
    from genrec.batches import Collator
    from genrec.data.dataset import PreparedDataset
    from genrec.decoding import atomic_logits
    from genrec.metrics import full_ranks
    from genrec.modeling.ensemble import Ensemble
    from genrec.prompts import load_templates

    tmp, data = runs
    ds = PreparedDataset.load(data)
    a, b = (GenRecModel.from_pretrained(tmp / f"s{s}/best") for s in (0, 1))
    ens = Ensemble([a, b])
    assert ens.seeds == [0, 1] and ens.codec is a.codec
    # the same checkpoint twice ranks exactly as the checkpoint alone
    assert _seq(Ensemble([a, GenRecModel.from_pretrained(tmp / "s0/best")]), ds) == _seq(a, ds)
    # two seeds: the ranks of mean(log_softmax(a), log_softmax(b)), computed here by hand
    got_seq, _ = _seq(ens, ds)
    from genrec.evaluate import _examples, eval_users
    t = next(t for t in load_templates()["sequential"] if t.id == "seq-1")
    users = eval_users(ds, "test", None)
    for m in (a, b, ens):
        m.eval()
        m.set_task("sequential")
    exs = _examples(ds, a, t, users, "test", 4, None, 0)
    batch = Collator(a, None).prompts(exs)
    with torch.no_grad():
        la, lb = (torch.log_softmax(atomic_logits(m, batch), -1).numpy() for m in (a, b))
    want = full_ranks((la + lb) / 2, [e.target_item for e in exs], [list(ds.history(e.user, "test")) for e in exs])
    assert got_seq == want
    assert not np.allclose(la, lb)  # the members differ, so the hand computation is not one member's ranks


def test_ensemble_refuses_mismatched_members(runs, tmp_path, capsys):
    from genrec.cli import main
    from genrec.modeling.ensemble import Ensemble

    tmp, data = runs
    a = GenRecModel.from_pretrained(tmp / "s0/best")
    with pytest.raises(ValueError, match="another recipe"):
        Ensemble([a, GenRecModel.from_pretrained(tmp / "other/best")])
    with pytest.raises(ValueError, match="atomic item tokens only"):
        Ensemble([a, GenRecModel.from_pretrained(tmp / "text/best")])
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([a])
    assert main(["evaluate", str(tmp / "s0/best"), str(tmp / "s1/best"), "--quiet"]) == 2
    assert "ranks items only" in capsys.readouterr().err
    out = tmp_path / "ens.json"
    assert main(["evaluate", str(tmp / "s0/best"), str(tmp / "s1/best"), "--families", "sequential", "--quiet",
                 "--templates", "first-seen", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ensemble"]["seeds"] == [0, 1] and len(res["ensemble"]["training"]) == 2
    assert res["checkpoint"] == [str(tmp / "s0/best"), str(tmp / "s1/best")]
    assert res["training"]["command"] == res["ensemble"]["training"][0]["command"]
