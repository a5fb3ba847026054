"""`clipstudio search DATA --model M --text | --image`: ranked images (and captions)."""

from __future__ import annotations


def test_search_text_prints_ranked_images(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    code, out, _ = cli("search", str(data), "--model", str(tiny_clip_dir), "--text", "a red square",
                       "--top", "4")
    assert code == 0
    ranked = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(ranked) == 4 and ranked[0].split()[0] == "1"


def test_search_image_finds_itself_first(cli, tmp_path, make_clip_finetune, tiny_clip_dir):
    data = make_clip_finetune(tmp_path / "pairs", {"val": 4})
    query = data / "val" / "imgs" / "val_2.png"
    code, out, _ = cli("search", str(data / "val"), "--model", str(tiny_clip_dir), "--image", str(query),
                       "--top", "2")
    assert code == 0
    first_hit = out.splitlines()[1]
    assert first_hit.endswith("val_2.png")
    assert "caption" in out


def test_search_missing_query_image_is_user_error(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = cli("search", str(data), "--model", str(tiny_clip_dir), "--image", str(tmp_path / "q.png"))
    assert code == 2 and "q.png" in err
