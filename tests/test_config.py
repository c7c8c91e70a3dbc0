import pytest

from genrec.config import ConfigError, DataConfig, from_dict, to_dict


def test_round_trip():
    cfg = from_dict(DataConfig, {"k_core": "3", "skip_bad_rows": "true", "item_ids": "collaborative"}, "data")
    assert cfg.k_core == 3 and cfg.skip_bad_rows is True
    assert from_dict(DataConfig, to_dict(cfg), "data") == cfg


@pytest.mark.parametrize("data, message", [
    ({"kcore": 3}, r"unknown key 'data.kcore' \(allowed: .*k_core"),
    ({"item_ids": "magic"}, r"data.item_ids = 'magic' is not allowed \(allowed: random, sequential, collaborative, semantic\)"),
    ({"k_core": "many"}, "data.k_core must be an integer, got 'many'"),
    ({"k_core": 0}, "k_core must be >= 1"),
    ({"source": "table"}, "data.path is required"),
])
def test_bad_values_name_key_value_and_allowed(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, data, "data")
