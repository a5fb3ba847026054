"""`clipstudio embed DATA | --text T --model M --output FILE.npz`: embeddings a notebook can load."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.images import load_image
from clipstudio.engine.embeddings import l2_normalise
from clipstudio.engine.models import load_model


@pytest.fixture(scope="module")
def tiny_model(tiny_clip_dir):
    return load_model(tiny_clip_dir, device="cpu")


def embed(cli, *argv):
    """Run ``clipstudio embed`` with ``--json -``: (exit code, summary or None, stderr)."""
    code, out, err = cli("embed", *argv, "--device", "cpu", "--json", "-")
    return code, (json.loads(out) if code == 0 else None), err


def load_npz(path):
    with np.load(path, allow_pickle=False) as npz:  # a notebook must not need to unpickle anything
        return {name: npz[name] for name in npz.files}


def test_image_embeddings_equal_the_models_own_in_dataset_order(cli, tmp_path, make_class_folders, tiny_clip_dir,
                                                                 tiny_model):
    data = make_class_folders(tmp_path / "data", {"normal": 3, "pneumonia": 2})
    out = tmp_path / "emb.npz"

    code, summary, _ = embed(cli, data, "--model", tiny_clip_dir, "--output", out)

    assert code == 0 and summary["n"] == 5 and summary["skipped"] == []
    npz = load_npz(out)
    listed = [str(p) for p in load_dataset(data).paths]
    assert npz["paths"].tolist() == listed
    assert npz["image_embeddings"].dtype == np.float32 and npz["image_embeddings"].shape == (5, 16)
    expected = l2_normalise(tiny_model.encode_images(tiny_model.preprocess([load_image(p) for p in listed])).numpy())
    np.testing.assert_allclose(npz["image_embeddings"], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(npz["image_embeddings"], axis=1), 1.0, atol=1e-6)
    assert npz["skipped"].tolist() == [] and str(npz["model"]) == str(tiny_clip_dir)


def test_text_embeddings_equal_the_models_own_in_the_order_given(cli, tmp_path, tiny_clip_dir, tiny_model):
    texts = ["a chest X-ray", "a chest X-ray showing pneumonia", "a chest X-ray"]
    out = tmp_path / "texts.npz"

    code, summary, _ = embed(cli, *(a for t in texts for a in ("--text", t)), "--model", tiny_clip_dir,
                             "--output", out)

    assert code == 0 and summary["kind"] == "text" and summary["n"] == 3
    npz = load_npz(out)
    assert npz["texts"].tolist() == texts
    assert npz["text_embeddings"].dtype == np.float32
    np.testing.assert_allclose(npz["text_embeddings"], l2_normalise(tiny_model.encode_texts(texts).numpy()),
                               atol=1e-5)
    assert "image_embeddings" not in npz


@pytest.mark.slow
def test_second_run_is_served_from_the_cache(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})

    _, first, _ = embed(cli, data, "--model", tiny_clip_dir, "--output", tmp_path / "1.npz")
    _, second, _ = embed(cli, data, "--model", tiny_clip_dir, "--output", tmp_path / "2.npz")
    _, uncached, _ = embed(cli, data, "--model", tiny_clip_dir, "--output", tmp_path / "3.npz", "--no-cache")

    assert (first["n_cached"], first["n_encoded"]) == (0, 4)
    assert (second["n_cached"], second["n_encoded"]) == (4, 0)
    assert (uncached["n_cached"], uncached["n_encoded"]) == (0, 4)
    np.testing.assert_array_equal(load_npz(tmp_path / "1.npz")["image_embeddings"],
                                  load_npz(tmp_path / "2.npz")["image_embeddings"])


@pytest.mark.slow
def test_unreadable_image_is_left_out_with_one_line_and_listed(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    broken = data / "a" / "a_9.png"
    broken.write_bytes(b"")
    out = tmp_path / "emb.npz"

    code, summary, err = embed(cli, data, "--model", tiny_clip_dir, "--output", out)

    assert code == 0 and summary["n"] == 4
    assert [line for line in err.splitlines() if str(broken) in line] == [
        f"clipstudio: warning: left out {broken}: file is empty"
    ]
    npz = load_npz(out)
    assert npz["skipped"].tolist() == [str(broken)] and npz["skipped_reasons"].tolist() == ["file is empty"]
    assert str(broken) not in npz["paths"].tolist() and len(npz["image_embeddings"]) == 4
    code, text, _ = cli("embed", data, "--model", tiny_clip_dir, "--output", out, "--device", "cpu")
    assert "1 unreadable image(s) left out" in text


def test_output_is_replaced_atomically_leaving_no_temporary_file(cli, tmp_path, tiny_clip_dir):
    out = tmp_path / "out" / "texts.npz"
    for text in ("first", "second"):
        code, _, _ = embed(cli, "--text", text, "--model", tiny_clip_dir, "--output", out)
        assert code == 0

    assert os.listdir(out.parent) == ["texts.npz"]
    assert load_npz(out)["texts"].tolist() == ["second"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["DATA", "--text", "x"], "give DATA (image embeddings) or --text (text embeddings), not both"),
        ([], "nothing to embed"),
        (["--text", "  "], "--text is empty"),
        (["--text", "x", "--output", "OUT/emb.txt"], "the file name must end in .npz"),
        (["--text", "x", "--output", "OUT/folder.npz"], "is a folder"),
        (["--text", "x", "--output", "OUT/a_file/emb.npz"], "is a file, not a folder"),
    ],
    ids=["data_and_text", "neither", "empty_text", "not_npz", "output_is_a_folder", "parent_is_a_file"],
)
def test_wrong_arguments_exit_2_with_one_line(cli, tmp_path, make_class_folders, argv, needle):
    data = make_class_folders(tmp_path / "data", {"a": 1, "b": 1})
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "a_file").write_text("x")
    argv = [str(data) if a == "DATA" else a.replace("OUT", str(tmp_path)) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "emb.npz")]

    code, out, err = cli("embed", *argv, "--model", "does-not-matter")

    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("clipstudio: error:") and needle in err
    assert not (tmp_path / "emb.npz").exists()


def _refuse_writing(monkeypatch, folder):
    """``folder`` is not writable, as without permission (root may write anywhere)."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == os.fspath(folder)
                        else real_access(p, mode, **kw))


@pytest.mark.parametrize("how", ["simulated", "real"])
def test_unwritable_output_folder_exits_2_before_loading_the_model(cli, tmp_path, monkeypatch, how):
    locked = tmp_path / "locked"
    locked.mkdir()
    if how == "simulated":
        _refuse_writing(monkeypatch, locked)
    elif os.name == "nt" or os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    else:
        locked.chmod(0o555)
    try:
        code, _, err = cli("embed", "--text", "x", "--model", "does-not-matter", "--output", locked / "e.npz")
    finally:
        locked.chmod(0o755)

    assert code == 2 and err.splitlines() == [
        f"clipstudio: error: --output {locked / 'e.npz'}: can't write to the folder {locked} (permission denied)."
    ]


def test_missing_output_argument_exits_2(cli, tmp_path):
    code, _, err = cli("embed", "--text", "x", "--model", "m")

    assert code == 2 and "--output" in err
