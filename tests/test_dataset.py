import numpy as np
import pytest

from genrec.files import OutputExistsError
from genrec.config import DataConfig
from genrec.data.dataset import PreparedDataset, feature_words
from genrec.data.loaders import DataError, load_raw


def test_bundled_default_prepares_and_round_trips(ml100k):
    m = ml100k.meta
    assert m["raw_counts"] == {"users": 943, "items": 1682, "interactions": 100_000}
    assert m["counts"]["users"] == 943
    assert m["split_sizes"]["test"] == m["split_sizes"]["valid"] == 943
    assert sum(m["split_sizes"].values()) == m["counts"]["interactions"]
    # every user's last item is its test item, the one before its valid item
    for u in (0, 100, 942):
        seq = ml100k.sequence(u)
        assert ml100k.target(u, "test") == seq[-1] and ml100k.target(u, "valid") == seq[-2]
        ts = ml100k.interactions[ml100k.interactions["user"] == u]["timestamp"].to_numpy()
        assert (np.diff(ts) >= 0).all()
    assert ml100k.negatives.shape == (943, 99)
    assert len(set(ml100k.item_ids)) == ml100k.n_items


def test_prepare_is_deterministic_for_a_seed():
    pytest.importorskip("recbole")
    raw = load_raw(DataConfig())
    a = PreparedDataset.build(raw, DataConfig(seed=5))
    b = PreparedDataset.build(raw, DataConfig(seed=5))
    c = PreparedDataset.build(raw, DataConfig(seed=6))
    assert a.item_ids == b.item_ids and (a.negatives == b.negatives).all()
    assert a.item_ids != c.item_ids
    assert a.interactions.equals(b.interactions)


def test_empty_after_k_core(data_dir):
    raw = load_raw(DataConfig(source="movielens-raw", path=str(data_dir / "ml100k_raw")))
    with pytest.raises(DataError, match="no interactions left after 5-core"):
        PreparedDataset.build(raw, DataConfig(source="movielens-raw", path="x"))


def test_save_is_atomic_and_refuses_to_overwrite(data_dir, tmp_path):
    cfg = DataConfig(source="amazon", path=str(data_dir / "amazon/reviews.json"),
                     items_path=str(data_dir / "amazon/meta.json"), k_core=1, n_candidates=3)
    ds = PreparedDataset.build(load_raw(cfg), cfg)
    out = tmp_path / "ds"
    ds.save(out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ds.save(out)
    ds.save(out, overwrite=True)
    back = PreparedDataset.load(out)
    assert back.meta["has_reviews"] and back.n_items == 3
    assert back.interactions["feature"].notna().all()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp leftovers


def test_schema_version_mismatch(tmp_path, ml100k):
    ml100k.save(tmp_path / "d")
    meta = (tmp_path / "d/meta.json")
    meta.write_text(meta.read_text().replace('"schema_version": 1', '"schema_version": 99'))
    with pytest.raises(DataError, match="schema version 99"):
        PreparedDataset.load(tmp_path / "d")
    with pytest.raises(DataError, match="not a prepared dataset"):
        PreparedDataset.load(tmp_path)


def test_feature_word_is_the_most_distinctive_word():
    import pandas as pd
    words = feature_words(pd.Series(["the zipper zipper broke", "great zipper", None, "the and of"]))
    assert words[0] == "zipper" and words[1] == "great" and words[2] is None and words[3] is None


def test_users_and_items_are_found_by_their_own_ids(ml100k_dir):
    """MovieLens-100K's raw user 1 is not the user whose generated ID is "1"; people mean the raw one."""
    ds = PreparedDataset.load(ml100k_dir)
    assert ds.user_raw_ids[0] == "1" and ds.find_user("1") == 0 and ds.find_user(" 1 ") == 0
    gen1 = ds.user_by_id.get("1")
    assert gen1 != 0 and ds.find_user("user_1") == gen1  # the generated name only in the model's form
    toy = ds.find_item("1")
    assert ds.title(toy) == "Toy Story" and ds.find_item(f"<item_{ds.item_ids[toy]}>") == toy
    assert ds.find_user("nobody") is None and ds.find_item("<item_nope>") is None
