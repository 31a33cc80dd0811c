"""Caption datasets: CSV/TSV and labelled folders, with clear errors for bad files and rows."""

import numpy as np
import pytest
from PIL import Image

from models.data import CsvCaptionDataset, DatasetError, ImageDecodeError, LabelledFolderDataset, load_rgb


def _png(path, value=0, size=(8, 6), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)  # 2-D uint8 -> mode "L"
    return path


def test_csv_dataset_yields_rgb_and_captions(tmp_path):
    _png(tmp_path / "img" / "a.png", 10)
    _png(tmp_path / "img" / "b.png", 200, mode="L")  # grayscale file still comes out RGB
    (tmp_path / "pairs.csv").write_text('filepath,title\nimg/a.png,"a scratch, long"\nimg/b.png,a stain\n')
    ds = CsvCaptionDataset(tmp_path / "pairs.csv")
    assert len(ds) == 2
    image, caption = ds[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 6)
    assert caption == "a scratch, long"
    image, caption = ds[1]
    assert image.mode == "RGB" and np.asarray(image)[0, 0].tolist() == [200, 200, 200]
    assert ds.caption(1) == "a stain"


def test_tsv_separator_custom_columns_and_root(tmp_path):
    _png(tmp_path / "data" / "x.png")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "pairs.tsv").write_text("caption\tpath\na dent, deep\tx.png\n")
    ds = CsvCaptionDataset(
        tmp_path / "meta" / "pairs.tsv", image_col="path", caption_col="caption", root=tmp_path / "data"
    )
    assert ds[0][1] == "a dent, deep"


def test_csv_missing_column_lists_found_columns(tmp_path):
    (tmp_path / "p.csv").write_text("image,text\na.png,x\n")
    with pytest.raises(DatasetError, match=r"missing column.*filepath.*found \['image', 'text'\]"):
        CsvCaptionDataset(tmp_path / "p.csv")


def test_csv_missing_image_reports_line(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "p.csv").write_text("filepath,title\na.png,ok\nmissing.png,oops\n")
    with pytest.raises(DatasetError, match=r"line 3.*missing\.png"):
        CsvCaptionDataset(tmp_path / "p.csv")


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(ImageDecodeError, match="bad.png"):
        load_rgb(bad)
    good = _png(tmp_path / "big.png", size=(64, 64))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.png"):  # ImageDecodeError is a ValueError
        load_rgb(cut)


def test_csv_dataset_decode_error_surfaces_on_access(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    (tmp_path / "p.csv").write_text("filepath,title\nbad.jpg,a crack\n")
    ds = CsvCaptionDataset(tmp_path / "p.csv")
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        ds[0]


def test_max_image_pixels_is_respected(tmp_path, monkeypatch):
    path = _png(tmp_path / "a.png", size=(20, 10))  # 200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # PIL alone would only warn below 2x
    with pytest.raises(ImageDecodeError, match="MAX_IMAGE_PIXELS"):
        load_rgb(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ImageDecodeError, match="MAX_IMAGE_PIXELS"):
        load_rgb(path)


LABEL_TEXTS = {"ok": ["a clean part", "no defect"], "scratch": ["a thin scratch", "a line", "a scrape", "a mark"]}


def _folder(tmp_path):
    root = tmp_path / "images"
    for i in range(2):
        _png(root / "ok" / f"{i}.png", i)
    for i in range(5):
        _png(root / "scratch" / ("sub" if i == 4 else "") / f"{i}.JPG", 100 + i)
    (root / "scratch" / "notes.txt").write_text("not an image")
    return root


def test_labelled_folder_labels_paths_and_captions(tmp_path):
    ds = LabelledFolderDataset(_folder(tmp_path), LABEL_TEXTS)
    assert len(ds) == len(ds.paths) == len(ds.labels) == 7
    assert ds.labels.count("ok") == 2 and ds.labels.count("scratch") == 5
    for i in range(len(ds)):
        image, caption = ds[i]
        assert image.mode == "RGB"
        assert caption in LABEL_TEXTS[ds.labels[i]]
        assert ds.paths[i].parent.name in (ds.labels[i], "sub")


def test_labelled_folder_captions_deterministic_and_vary_by_epoch(tmp_path):
    root = _folder(tmp_path)
    a, b = LabelledFolderDataset(root, LABEL_TEXTS, seed=3), LabelledFolderDataset(root, LABEL_TEXTS, seed=3)
    assert [a.caption(i) for i in range(len(a))] == [b.caption(i) for i in range(len(b))]
    per_epoch = []
    for epoch in range(6):
        a.set_epoch(epoch)
        per_epoch.append(tuple(a.caption(i) for i in range(len(a))))
    assert len(set(per_epoch)) > 1  # paraphrases rotate across epochs
    a.set_epoch(2)
    assert tuple(a.caption(i) for i in range(len(a))) == per_epoch[2]


def test_labelled_folder_unknown_subfolder_lists_known_labels(tmp_path):
    root = _folder(tmp_path)
    _png(root / "dent" / "0.png")
    with pytest.raises(DatasetError, match=r"dent.*known labels: \['ok', 'scratch'\]"):
        LabelledFolderDataset(root, LABEL_TEXTS)


def test_labelled_folder_without_images(tmp_path):
    (tmp_path / "ok").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        LabelledFolderDataset(tmp_path, LABEL_TEXTS)
