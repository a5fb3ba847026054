"""`clipstudio retrieve DATA --model M`: Recall@K on image-caption pairs."""

from __future__ import annotations

import json


def test_retrieve_json_on_pairs(cli, tmp_path, make_clip_finetune, tiny_clip_dir):
    data = make_clip_finetune(tmp_path / "pairs", {"train": 3, "val": 5})
    out_json = tmp_path / "r.json"
    code, out, _ = cli("retrieve", str(data), "--model", str(tiny_clip_dir), "--k", "1", "3",
                       "--json", str(out_json))
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["n"] == 5 and d["split"] == "val"
    assert set(d["image_to_text"]) == {"R@1", "R@3"} and set(d["text_to_image"]) == {"R@1", "R@3"}
    assert set(d["mean_rank"]) == {"image_to_text", "text_to_image"}
    assert d["image_to_text"]["R@3"] >= d["image_to_text"]["R@1"]
    assert "image -> text" in out


def test_retrieve_on_class_folders_explains_captions_are_needed(cli, tmp_path, make_class_folders,
                                                                 tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = cli("retrieve", str(data), "--model", str(tiny_clip_dir))
    assert code == 2 and "caption" in err
