"""genrec.files: outputs never lose a user's files, are checked before any work, leave nothing behind
on failure and follow the umask."""
import json
import os
import stat

import pytest

from genrec.cli import main
from genrec.files import MARKER, OutputError, atomic_dir, atomic_write_text, check_output_dir, genrec_output


def write_table(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user,item,timestamp"] + [f"u{u},i{(u + j) % 6},{j}" for u in range(5) for j in range(5)]
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    (folder / "notes.txt").write_text("my notes\n")
    return ["--source", "table", "--path", str(folder / "ratings.csv"), "--k-core", "1", "--n-candidates", "3"]


def test_overwrite_never_deletes_a_folder_holding_the_inputs(tmp_path, capsys):
    src = write_table(tmp_path / "mine")
    assert main(["prepare", "--quiet", "--out", str(tmp_path / "mine"), "--overwrite"] + src) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot write output directory {tmp_path / 'mine'}: it holds the input" in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt", "ratings.csv"]


def test_overwrite_replaces_only_genrec_outputs(tmp_path, capsys):
    src = write_table(tmp_path / "raw")
    out = tmp_path / "d"
    assert main(["prepare", "--quiet", "--out", str(out)] + src) == 0
    assert genrec_output(out) == "dataset" and (out / MARKER).is_file()
    assert main(["prepare", "--quiet", "--out", str(out), "--overwrite"] + src) == 0  # its own output: replaced
    (out / "thesis.tex").write_text("do not lose me")
    assert main(["prepare", "--quiet", "--out", str(out), "--overwrite"] + src) == 2
    assert "replaces only a previous genrec output" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "do not lose me"
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("x")
    assert main(["prepare", "--quiet", "--out", str(other), "--overwrite"] + src) == 2
    assert (other / "a.txt").exists()


def test_out_dot_is_refused_before_any_work_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    src = write_table(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["prepare", "--quiet", "--out", ".", "--overwrite"] + src) == 2
    err = capsys.readouterr().err
    assert f"cannot write output directory {tmp_path}" in err and "empty name" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no hidden ..tmp-* dataset


def test_unwritable_out_is_one_line_naming_the_path(tmp_path, capsys):
    src = write_table(tmp_path / "raw")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    assert main(["prepare", "--quiet", "--out", str(out)] + src) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genrec prepare: error: cannot write output directory") and str(out) in err
    with pytest.raises(OutputError, match="a file of that name exists"):
        check_output_dir(tmp_path / "afile", overwrite=True)
    with pytest.raises(OutputError, match="file-system root"):
        check_output_dir("/", overwrite=True)


def test_legacy_outputs_are_recognised_by_their_own_metadata(tmp_path):
    ds = tmp_path / "old"
    ds.mkdir()
    (ds / "meta.json").write_text(json.dumps({"schema_version": 3}))
    (ds / "items.parquet").write_bytes(b"")
    assert genrec_output(ds) == "dataset"
    (ds / "mine.csv").write_text("x")
    assert genrec_output(ds) is None
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.yaml").write_text("genrec_checkpoint: 2\n")
    assert genrec_output(ck) == "checkpoint"
    (ck / "config.yaml").write_text("someone: else\n")
    assert genrec_output(ck) is None


def test_a_failure_inside_leaves_no_temp_and_keeps_the_old_output(tmp_path):
    out = tmp_path / "o"
    with atomic_dir(out, kind="thing") as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True, kind="thing") as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("boom")
    assert (out / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d", kind="thing") as tmp:
            (tmp / "f").write_text("x")
        atomic_write_text(tmp_path / "t.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "t.json").stat().st_mode) == 0o644


def test_features_overwrite_replaces_only_a_feature_cache(tmp_path):
    from genrec.vision import VisionError, extract_features
    mine = tmp_path / "ratings.csv"
    mine.write_text("user,item\n")
    with pytest.raises(VisionError, match="not a genrec feature cache"):
        extract_features([None, None], mine, pretrained="none", overwrite=True, progress=False)
    assert mine.read_text() == "user,item\n"


def test_evaluate_out_replaces_only_a_result_file_and_says_so_before_any_work(tmp_path, capsys):
    mine = tmp_path / "ratings.csv"
    mine.write_text("user,item\n")
    assert main(["evaluate", str(tmp_path / "no-such-checkpoint"), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genrec evaluate: error: cannot write {mine}: it exists and genrec did not write it; remove " \
                  "it yourself or choose another --out"
    assert mine.read_text() == "user,item\n"
    notes = tmp_path / "r.md"
    notes.write_text("my notes")  # the .md beside a new result is someone's file: kept
    assert main(["evaluate", str(tmp_path / "no-such-checkpoint"), "--out", str(tmp_path / "r.json")]) == 2
    assert "r.md: it exists and genrec did not write it" in capsys.readouterr().err


def test_quickstart_and_training_folders_are_recognised_before_anything_is_deleted(tmp_path):
    from genrec.checkpoint import is_run_dir
    from genrec.files import check_output_file
    run = tmp_path / "run"
    for sub in ("best", "last"):
        with atomic_dir(run / sub, kind="checkpoint") as tmp:
            (tmp / "config.yaml").write_text("genrec_checkpoint: 2\n")
    (run / "train_summary.json").write_text("{}")
    assert is_run_dir(run)
    (run / "thesis.tex").write_text("x")
    assert not is_run_dir(run)
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"families": {}}))
    assert check_output_file(res, lambda p: "families" in json.loads(p.read_text())) == res
    with pytest.raises(OutputError, match="is a directory"):
        check_output_file(run, lambda p: True)


def test_train_and_features_outputs_are_checked_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["train", "adapters/tiny.yaml", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "afile")]) == 2
    assert "cannot write output directory" in capsys.readouterr().err
    assert main(["train", "adapters/tiny.yaml", "--data", str(tmp_path / "nodata"),
                 "--out", str(tmp_path / "afile" / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "x"
