"""The vision pipeline on real image files (scikit-learn ships two real photos) with a tiny
random-weight open_clip model — mechanics only, the features mean nothing."""
import dataclasses
import shutil
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("open_clip", reason="needs the vision extra: pip install 'genrec[vision]'")

from genrec.vision import RANDOM_WARNING, VisionError, extract_features, load_features  # noqa: E402

PHOTOS = Path(__import__("sklearn").__file__).parent / "datasets" / "images"


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "img"
    d.mkdir()
    shutil.copy(PHOTOS / "china.jpg", d / "a.jpg")
    shutil.copy(PHOTOS / "flower.jpg", d / "b.jpg")
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    return [str(d / "a.jpg"), None, str(d / "b.jpg"), str(d / "broken.jpg"), str(d / "missing.jpg")]


def run(paths, out, **kw):
    return extract_features(paths, out, "genrec-tiny-clip", "none", batch_size=2, progress=False, **kw)


def test_extract_masks_missing_and_corrupt_images(images, tmp_path, capsys):
    feats, rep = run(images, tmp_path / "f.safetensors")
    assert RANDOM_WARNING in capsys.readouterr().err
    assert rep["encoded"] == 2 and rep["masked"] == 3 and rep["no_image"] == 1 and len(rep["failed"]) == 2
    assert feats.mask.tolist() == [True, False, True, False, False]
    assert feats.features.shape == (5, 32)
    assert (feats.features[~feats.mask] == 0).all() and (feats.features[feats.mask].abs().sum(1) > 0).all()
    assert not torch.allclose(feats.features[0], feats.features[2])  # two different photos
    with pytest.warns(UserWarning, match="RANDOM weights"):
        back = load_features(tmp_path / "f.safetensors")
    assert torch.equal(back.features, feats.features)
    assert back.provenance["encoder"] == "genrec-tiny-clip" and back.provenance["random_weights"] == "true"
    assert "Resize" in back.provenance["preprocess"] and len(back.provenance["images_sha256"]) == 64


def test_second_run_is_a_cache_hit_and_a_changed_image_is_refused(images, tmp_path):
    out = tmp_path / "f.safetensors"
    first, _ = run(images, out)
    again, rep = run(images, out)
    assert rep["cache_hit"] and torch.equal(again.features, first.features)
    shutil.copy(PHOTOS / "china.jpg", images[2])  # b.jpg now holds another picture
    with pytest.raises(VisionError, match="differs in images_sha256"):
        run(images, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rebuilt, rep = run(images, out, overwrite=True)
    assert not rep["cache_hit"]
    torch.testing.assert_close(rebuilt.features[2], rebuilt.features[0], rtol=1e-4, atol=1e-4)  # same photo now
    with pytest.raises(VisionError, match="expected|asked for"):
        load_features(out, expect={"encoder": "ViT-B-32"})


def test_interrupted_extraction_resumes_from_finished_chunks(images, tmp_path, monkeypatch):
    import genrec.vision as v
    out = tmp_path / "f.safetensors"
    real, calls = v.atomic_write_bytes, []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(v, "atomic_write_bytes", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(images, out, chunk=1)
    monkeypatch.setattr(v, "atomic_write_bytes", real)
    assert not out.exists()
    chunk0 = out.with_name(out.name + ".partial") / "chunk-00000000.safetensors"
    from safetensors.torch import load_file, save_file
    t = load_file(str(chunk0))
    save_file({"features": torch.full_like(t["features"], 7.0), "mask": t["mask"]}, str(chunk0))
    feats, rep = run(images, out, chunk=1)
    assert (feats.features[0] == 7.0).all()  # the finished chunk was reused, not re-encoded
    assert feats.mask.tolist() == [True, False, True, False, False]
    assert not out.with_name(out.name + ".partial").exists()


def test_bad_encoder_choices(images, tmp_path):
    with pytest.raises(VisionError, match="only with random weights"):
        extract_features(images, tmp_path / "x", "genrec-tiny-clip", "openai", progress=False)
    with pytest.raises(VisionError, match="unknown CLIP encoder"):
        extract_features(images, tmp_path / "x", "ViT-Z-99", "none", progress=False)
    with pytest.raises(VisionError, match="cannot load CLIP ViT-B-32 weights"):
        extract_features(images, tmp_path / "x", "ViT-B-32", str(tmp_path / "nope.pt"), progress=False)


def prepare_with_images(tmp_path, images, users: int, features: bool = False) -> None:
    """`genrec prepare` a table dataset of `users` x 5 items whose images are the fixture's (one
    each: readable, none, readable, unreadable, missing) into tmp_path/ds; then `genrec features`
    with the random tiny CLIP when asked."""
    from genrec.cli import main
    csv = tmp_path / "i.csv"
    csv.write_text("user,item,timestamp\n" + "".join(f"u{u},i{i},{u * 10 + i}\n" for u in range(users) for i in range(5)))
    items = tmp_path / "items.csv"
    items.write_text("item,title,image\n" + "".join(f"i{i},Item {i},{p or ''}\n" for i, p in enumerate(images)))
    assert main(["prepare", "--quiet", "--source", "table", "--path", str(csv), "--items-path", str(items),
                 "--k-core", "1", "--n-candidates", "2", "--out", str(tmp_path / "ds")]) == 0
    if features:
        assert main(["features", str(tmp_path / "ds"), "--clip-model", "genrec-tiny-clip", "--clip-pretrained",
                     "none", "--quiet"]) == 0


def test_features_cli_on_a_prepared_dataset(tmp_path, images, capsys):
    from genrec.cli import main
    prepare_with_images(tmp_path, images, users=3)
    args = ["features", str(tmp_path / "ds"), "--clip-model", "genrec-tiny-clip", "--clip-pretrained", "none",
            "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "2 images encoded, 3 items masked (1 without an image, 1 missing, 1 unreadable)" in out.out
    assert RANDOM_WARNING in out.err
    assert main(args) == 0
    assert "cache hit" in capsys.readouterr().out
    assert (tmp_path / "ds/features/genrec-tiny-clip-none.safetensors").is_file()


def test_training_starts_pictured_items_from_title_plus_image(tmp_path, images):
    """item_init=title+image through `train`: with a zero first learning rate (full warmup over one step)
    the saved rows are the initial ones; only items whose image was read differ from the title init."""
    from safetensors.torch import load_file

    from genrec.train import train
    from tests.helpers import tiny_recipe
    prepare_with_images(tmp_path, images, users=4, features=True)
    rows = {}
    for init in ("title", "title+image"):
        rec = tiny_recipe(steps=1, warmup=1.0, max_history=2, candidates=2)
        rec = dataclasses.replace(rec, items=dataclasses.replace(rec.items, init=init))
        with pytest.warns(UserWarning):  # random-weight CLIP stand-in
            train(rec, tmp_path / "ds", tmp_path / init, progress=False)
        rows[init] = load_file(str(tmp_path / init / "last/trainable.safetensors"))["item_emb.weight"]
    from genrec.data.dataset import PreparedDataset
    from genrec.vision import load_features
    ds = PreparedDataset.load(tmp_path / "ds")
    with pytest.warns(UserWarning):
        read = load_features(tmp_path / "ds/features/genrec-tiny-clip-none.safetensors").mask
    pictured = torch.tensor([bool(read[i]) for i in range(ds.n_items)])
    assert 0 < int(pictured.sum()) < ds.n_items
    same = (rows["title"] == rows["title+image"]).all(1)
    assert torch.equal(same, ~pictured)


def test_only_items_whose_image_was_read_get_visual_tokens(tmp_path, images):
    """Prompts give <img> slots to items with a readable image, not to every item with an image path:
    the broken and the missing file (items 3 and 4) are written like the item without an image."""
    import numpy as np

    from genrec.batches import make_example, pictured_items
    from genrec.data.dataset import PreparedDataset
    from genrec.modeling.model import GenRecModel
    from genrec.prompts import IMAGE_TOKEN, load_templates
    from tests.helpers import tiny_recipe
    prepare_with_images(tmp_path, images, users=3, features=True)
    ds = PreparedDataset.load(tmp_path / "ds")
    with pytest.warns(UserWarning):
        feats = load_features(tmp_path / "ds/features/genrec-tiny-clip-none.safetensors")
    by_name = {ds.title(i): i for i in range(ds.n_items)}
    assert pictured_items(feats.features) == {by_name["Item 0"], by_name["Item 2"]}
    assert pictured_items(None) is None
    model = GenRecModel(tiny_recipe(item_tokens="text"), item_ids=ds.item_ids)
    t = next(t for t in load_templates()["sequential"] if "{history_images}" in t.input)
    v = {"user": ds.user_ids[0], "history": [by_name[f"Item {i}"] for i in range(4)], "item": by_name["Item 4"]}
    ex = make_example(ds, model, t, 0, "test", np.random.default_rng(0), image_items=pictured_items(feats.features),
                      values=v)
    assert ex.source.count(IMAGE_TOKEN) == 2 * model.recipe.model.visual_tokens
    assert set(ex.image_items) == {by_name["Item 0"], by_name["Item 2"]}
