"""Today's dataset layouts and real files: the current MovieLens layout, tables with other column
names, delimiters and encodings, Amazon metadata of odd types, bad rows counted by file."""
import json

import pytest

from genrec.cli import main
from genrec.config import DataConfig
from genrec.data.loaders import DataError, load_raw


def test_current_movielens_layout_with_genres_years_and_quoted_titles(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
                                          "2,1,3.0,964982224\n2,5,5.0,964983815\n")
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Comedy\n'
                                         '3,"American President, The (1995)",Comedy|Drama|Romance\n'
                                         "5,Unknown Thing (2018),(no genres listed)\n")
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,1\n")
    raw = load_raw(DataConfig(source="movielens-raw", path=str(tmp_path)))
    it = raw.items.set_index("item")
    assert (it.loc["1", "title"], it.loc["1", "year"], it.loc["1", "category"]) == \
        ("Toy Story", 1995, "Adventure|Animation|Comedy")
    assert it.loc["3", "title"] == "The American President" and it.loc["3", "year"] == 1995
    assert it.loc["5", "category"] == "" and len(raw.interactions) == 4
    assert raw.interactions["rating"].tolist() == [4.0, 4.5, 3.0, 5.0]
    assert any("tags.csv" in n for n in raw.notes)


@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_table_with_your_column_names_and_delimiter(tmp_path, sep):
    rows = [["uid", "movieId", "ts", "stars", "device"], ["a", "m1", "10", "4", "tv"], ["a", "m2", "20", "5", "tv"],
            ["b", "m1", "15", "3", "phone"]]
    (tmp_path / "i.csv").write_text("\n".join(sep.join(r) for r in rows) + "\n")
    (tmp_path / "items.csv").write_text(sep.join(["movieId", "title", "genres"]) + "\n"
                                        + sep.join(["m1", "Heat (1995)", "Action|Crime"]) + "\n"
                                        + sep.join(["m2", "Fargo (1996)", "Crime"]) + "\n")
    c = DataConfig(source="table", path=str(tmp_path / "i.csv"), items_path=str(tmp_path / "items.csv"),
                   columns="user=uid,timestamp=ts")
    raw = load_raw(c)
    assert raw.interactions[["user", "item", "timestamp"]].values.tolist() == [["a", "m1", 10], ["a", "m2", 20],
                                                                               ["b", "m1", 15]]
    assert raw.interactions["rating"].tolist() == [4.0, 5.0, 3.0]  # "stars" is a known spelling of rating
    it = raw.items.set_index("item")
    assert (it.loc["m1", "title"], it.loc["m1", "year"], it.loc["m1", "category"]) == ("Heat", 1995, "Action|Crime")
    assert any("device" in n for n in raw.notes)


def test_column_mapping_errors_and_missing_columns_name_the_fix(tmp_path):
    (tmp_path / "i.csv").write_text("who\twhat\twhen\nu\ti\t1\n")
    with pytest.raises(DataError, match="missing column 'user'.*--columns user="):
        load_raw(DataConfig(source="table", path=str(tmp_path / "i.csv")))
    with pytest.raises(DataError, match="not NAME=COLUMN"):
        load_raw(DataConfig(source="table", path=str(tmp_path / "i.csv"), columns="person=who"))
    raw = load_raw(DataConfig(source="table", path=str(tmp_path / "i.csv"), columns="user=who,item=what,timestamp=when"))
    assert raw.interactions["user"].tolist() == ["u"]


def test_encoding_hint_and_option(tmp_path):
    (tmp_path / "i.csv").write_text("user,item,timestamp\nu,1,1\n")
    (tmp_path / "items.csv").write_bytes("item,title\n1,Am\xe9lie\n".encode("latin-1"))
    c = dict(source="table", path=str(tmp_path / "i.csv"), items_path=str(tmp_path / "items.csv"))
    with pytest.raises(DataError, match=r"items.csv: not utf-8 text .*--encoding latin-1"):
        load_raw(DataConfig(**c))
    raw = load_raw(DataConfig(**c, encoding="latin-1"))
    assert raw.items["title"].tolist() == ["Amélie"]


def test_rows_with_extra_fields_fail_with_a_line_or_are_skipped_and_counted(tmp_path, capsys):
    (tmp_path / "i.csv").write_text("user,item,timestamp\n" + "".join(f"u{j % 3},i{j % 4},{j}\n" for j in range(12))
                                    + "u1,i1,5,extra,fields\n")
    with pytest.raises(DataError, match="i.csv: .*line 14.*--skip-bad-rows"):
        load_raw(DataConfig(source="table", path=str(tmp_path / "i.csv")))
    raw = load_raw(DataConfig(source="table", path=str(tmp_path / "i.csv"), skip_bad_rows=True))
    assert raw.skipped == {"i.csv": 1} and len(raw.interactions) == 12
    assert main(["prepare", "--quiet", "--source", "table", "--path", str(tmp_path / "i.csv"), "--k-core", "1",
                 "--n-candidates", "3", "--skip-bad-rows", "--out", str(tmp_path / "d")]) == 0
    assert "1 bad rows skipped (i.csv: 1)" in capsys.readouterr().out


def _amazon(tmp_path, meta_lines):
    rev = [{"reviewerID": f"u{j % 3}", "asin": f"a{j % 4}", "unixReviewTime": 100 + j, "overall": 4.0}
           for j in range(12)]
    (tmp_path / "r.json").write_text("\n".join(json.dumps(r) for r in rev) + "\n")
    (tmp_path / "m.json").write_text("\n".join(meta_lines) + "\n")
    return dict(source="amazon", path=str(tmp_path / "r.json"), items_path=str(tmp_path / "m.json"))


def test_amazon_metadata_of_odd_types_is_coerced(tmp_path):
    c = _amazon(tmp_path, [json.dumps({"asin": "a0", "title": ["First title", "x"], "category": "Sports"}),
                           json.dumps({"asin": "a1", "title": 12345, "categories": [["Toys", "Balls"]]}),
                           json.dumps({"asin": "a2", "title": "Plain", "category": ["A", "B"]})])
    it = load_raw(DataConfig(**c)).items.set_index("item")
    assert it.loc["a0", "title"] == "First title" and it.loc["a0", "category"] == "Sports"  # not S|p|o|r|t|s
    assert it.loc["a1", "title"] == "12345" and it.loc["a1", "category"] == "Toys|Balls"
    assert it.loc["a2", "category"] == "A|B"


def test_amazon_bad_fields_name_file_line_field_and_skips_are_counted(tmp_path):
    c = _amazon(tmp_path, [json.dumps({"asin": "a0", "title": {"nested": "dict"}}),
                           "[" * 100_000 + "]" * 100_000,
                           json.dumps({"asin": "a1", "title": "ok"})])
    with pytest.raises(DataError, match=r"m.json:1: field 'title': expected text, got dict"):
        load_raw(DataConfig(**c))
    raw = load_raw(DataConfig(**c, skip_bad_rows=True))
    assert raw.skipped == {"r.json": 0, "m.json": 2}
    assert raw.items.set_index("item").loc["a1", "title"] == "ok"
    rev = tmp_path / "r.json"
    rev.write_text(rev.read_text() + json.dumps({"reviewerID": "u9", "asin": "a1", "unixReviewTime": 5,
                                                 "overall": "five"}) + "\n")
    with pytest.raises(DataError, match=r"r.json:13: field 'overall': not a number: 'five'"):
        load_raw(DataConfig(**c))
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000 + "\n")
    with pytest.raises(DataError, match="deep.json:1: JSON nested too deeply"):
        load_raw(DataConfig(source="amazon", path=str(deep)))


def test_inspect_warns_when_candidates_exceed_the_catalogue(tmp_path, capsys):
    (tmp_path / "i.csv").write_text("user,item,timestamp\n" + "".join(f"u{j % 3},i{j % 8},{j}\n" for j in range(30)))
    # the one override syntax, --section.key value, as for recipes
    assert main(["prepare", "--quiet", "--data.source", "table", "--data.path", str(tmp_path / "i.csv"),
                 "--data.k_core", "1", "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["inspect", "--data", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "warning   data.n_candidates is 100 but this catalogue of 8 items" in out
    assert "100 candidates per user" not in out
