import pytest

from genrec.config import DataConfig
from genrec.data.dataset import PreparedDataset
from genrec.data.loaders import load_raw
from genrec.data.semantic import build_semantic


def two_genre_texts():
    space = [f"space laser robot galaxy episode {i}" for i in range(10)]
    love = [f"romance love wedding letters part {i}" for i in range(10)]
    return space + love


def test_semantic_ids_are_unique_and_similar_items_share_prefixes():
    ids, index = build_semantic(two_genre_texts(), levels=2, codes=2, dim=8, seed=0)
    assert len(set(ids)) == 20
    first = [i.split("-")[0] for i in ids]
    assert len(set(first[:10])) == 1 and len(set(first[10:])) == 1 and first[0] != first[10]


def test_a_new_item_gets_an_id_from_its_content_alone():
    ids, index = build_semantic(two_genre_texts(), levels=2, codes=2, dim=8, seed=0)
    new = index.assign("a robot in space with a laser")
    assert new not in ids
    assert new.split("-")[0] == ids[0].split("-")[0]  # lands in the space branch
    assert index.assign("a robot in space with a laser") not in (new, *ids)  # collisions get a new code


def test_semantic_ids_on_a_prepared_dataset_round_trip(tmp_path, data_dir):
    cfg = DataConfig(source="movielens-raw", path=str(data_dir / "ml100k_raw"), k_core=1, n_candidates=2,
                     item_ids="semantic", semantic_levels=2, semantic_codes=2)
    ds = PreparedDataset.build(load_raw(cfg), cfg)
    assert len(set(ds.item_ids)) == ds.n_items == 4
    ds.save(tmp_path / "d")
    back = PreparedDataset.load(tmp_path / "d")
    assert back.semantic is not None and back.item_ids == ds.item_ids
    assert back.semantic.assign("heat crime thriller") not in ds.item_ids


def test_trie_accepts_exactly_the_semantic_catalogue(tmp_path, data_dir):
    import torch

    from genrec.decoding import build_trie
    from genrec.modeling.model import GenRecModel
    from tests.helpers import tiny_recipe
    ids, _ = build_semantic(two_genre_texts(), levels=2, codes=3, dim=8, seed=0)
    torch.manual_seed(0)
    m = GenRecModel(tiny_recipe(item_tokens="text"), item_ids=ids)
    trie = build_trie(m)
    assert len(trie) == len(ids)
    for i in range(len(ids)):
        assert trie.item_of(m.codec.target_ids(i)) == i
    # a code path that is no item is rejected
    assert trie.item_of(m.tokenizer(" 9-9-9", add_special_tokens=False)["input_ids"]) is None


def test_unknown_scheme_in_config():
    from genrec.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match="semantic"):
        from_dict(DataConfig, {"item_ids": "magic"}, "data")
