import json

import pandas as pd
import pytest

from genrec.config import DataConfig
from genrec.data.loaders import DataError, english_title, load_raw


def cfg(**kw):
    return DataConfig(**kw)


def test_bundled_movielens_100k_raw_counts():
    pytest.importorskip("recbole", reason="MovieLens-100K ships in the recbole wheel")
    raw = load_raw(cfg())
    assert len(raw.interactions) == 100_000
    assert raw.interactions["user"].nunique() == 943
    assert raw.interactions["item"].nunique() == 1682
    toy = raw.items.set_index("item").loc["1"]
    assert (toy["title"], toy["year"], toy["category"]) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    facts = json.loads(toy["facts"])
    assert facts["awards_won"] == 3 and facts["directed_by"]


def test_movielens_raw_100k_layout(data_dir):
    raw = load_raw(cfg(source="movielens-raw", path=str(data_dir / "ml100k_raw")))
    assert len(raw.interactions) == 6
    it = raw.items.set_index("item")
    assert it.loc["11", "title"] == "The Usual Suspects" and it.loc["11", "year"] == 1995
    assert it.loc["10", "category"] == "Animation|Children's|Comedy"
    assert it.loc["13", "category"] == "Crime|Drama|Thriller"


def test_movielens_raw_1m_layout(data_dir):
    raw = load_raw(cfg(source="movielens-raw", path=str(data_dir / "ml1m_raw")))
    assert list(raw.interactions["timestamp"])[:2] == [978300760, 978302109]
    assert raw.items.set_index("item").loc["661", "category"] == "Animation|Children's|Musical"


def test_amazon_reviews_and_python_literal_metadata(data_dir):
    raw = load_raw(cfg(source="amazon", path=str(data_dir / "amazon/reviews.json"),
                       items_path=str(data_dir / "amazon/meta.json")))
    assert len(raw.interactions) == 4
    assert raw.interactions["review"].iloc[0].startswith("The leather")
    it = raw.items.set_index("item")
    assert it.loc["B001", "title"] == "Leather Wallet"
    assert it.loc["B001", "category"] == "Clothing|Accessories"
    assert it.loc["B002", "category"] == "Clothing|Shoes"
    assert it["image"].isna().all()  # URLs only: images must be fetched beforehand


def test_amazon_local_images(data_dir, tmp_path):
    (tmp_path / "B002.jpg").write_bytes(b"\xff\xd8")
    raw = load_raw(cfg(source="amazon", path=str(data_dir / "amazon/reviews.json"),
                       items_path=str(data_dir / "amazon/meta.json"), images_path=str(tmp_path)))
    assert raw.items.set_index("item").loc["B002", "image"].endswith("B002.jpg")


def test_table_csv_with_iso_dates_and_items(data_dir):
    raw = load_raw(cfg(source="table", path=str(data_dir / "table/interactions.csv"),
                       items_path=str(data_dir / "table/items.csv")))
    assert list(raw.interactions["timestamp"]) == [10, 20, 5, 1609459200]
    assert raw.interactions["rating"].isna().sum() == 1
    assert raw.items.set_index("item").loc["i2", "title"] == "Second item"


def test_table_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    pd.DataFrame({"user": ["a", "a"], "item": ["x", "y"], "timestamp": [1, 2]}).to_parquet(p)
    raw = load_raw(cfg(source="table", path=str(p)))
    assert list(raw.interactions["item"]) == ["x", "y"]


def test_english_title():
    assert english_title("Usual Suspects, The") == "The Usual Suspects"
    assert english_title("Heat") == "Heat"


# ---------------------------------------------------------------- bad input
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_raw(cfg(source="table", path=str(tmp_path / "nope.csv")))


def test_table_missing_column(tmp_path):
    p = write(tmp_path, "t.csv", "user,item\na,b\n")
    with pytest.raises(DataError, match=r"t.csv: missing column 'timestamp' \(found: user, item;"):
        load_raw(cfg(source="table", path=p))


def test_table_bad_timestamp_names_line_and_field(tmp_path):
    p = write(tmp_path, "t.csv", "user,item,timestamp\na,b,1\na,c,soon\na,d,3\n")
    with pytest.raises(DataError, match=r"t.csv:3: bad value in field 'timestamp': 'soon'"):
        load_raw(cfg(source="table", path=p))
    raw = load_raw(cfg(source="table", path=p, skip_bad_rows=True))
    assert raw.skipped_rows == 1 and list(raw.interactions["item"]) == ["b", "d"]


def test_movielens_bad_number_names_line(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "u.data").write_text("1\t10\t5\t100\n1\t11\tfive\t200\n")
    (d / "u.item").write_text("10|A (1990)|x||u" + "|0" * 19 + "\n11|B (1991)|x||u" + "|0" * 19 + "\n")
    with pytest.raises(DataError, match=r"u.data:2: field 'rating' is not a number: 'five'"):
        load_raw(cfg(source="movielens-raw", path=str(d)))
    assert load_raw(cfg(source="movielens-raw", path=str(d), skip_bad_rows=True)).skipped_rows == 1


def test_movielens_wrong_field_count(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "u.data").write_text("1\t10\t5\t100\n1\t11\t4\t200\t9\n")
    (d / "u.item").write_text("")
    with pytest.raises(DataError, match=r"u.data:2: wrong number of fields"):
        load_raw(cfg(source="movielens-raw", path=str(d)))
    raw = load_raw(cfg(source="movielens-raw", path=str(d), skip_bad_rows=True))
    assert raw.skipped_rows == 1


def test_movielens_folder_without_files(tmp_path):
    with pytest.raises(DataError, match="no MovieLens files found"):
        load_raw(cfg(source="movielens-raw", path=str(tmp_path)))


def test_amazon_bad_json_and_missing_field(tmp_path):
    p = write(tmp_path, "r.json", '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"r.json:2: not valid JSON"):
        load_raw(cfg(source="amazon", path=p))
    p = write(tmp_path, "r2.json", '{"reviewerID": "a", "unixReviewTime": 1}\n')
    with pytest.raises(DataError, match=r"r2.json:1: missing field 'asin'"):
        load_raw(cfg(source="amazon", path=p))
    p = write(tmp_path, "r3.json", '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\n{oops\n')
    assert load_raw(cfg(source="amazon", path=p, skip_bad_rows=True)).skipped_rows == 1
