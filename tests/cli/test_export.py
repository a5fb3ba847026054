"""`clipstudio export RUN_OR_MODEL --format hf|onnx --output DIR`: one step, one line on failure."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.export import onnx as onnx_export


def export(cli, *argv):
    """Run ``clipstudio export`` with ``--json -``: (exit code, summary or None, stderr)."""
    code, out, err = cli("export", *argv, "--json", "-")
    return code, (json.loads(out) if code == 0 else None), err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("clipstudio: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_export_hf_writes_a_transformers_folder(cli, tiny_clip_dir, tmp_path):
    out = tmp_path / "hf"

    code, summary, _ = export(cli, tiny_clip_dir, "--format", "hf", "--output", out)

    assert code == 0 and summary["format"] == "hf" and summary["layout"] == "clip_model"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(summary["files"])
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_export_onnx_of_a_run_reports_its_self_check_and_classes(cli, trained, tmp_path):
    code, summary, _ = export(cli, trained["full"], "--format", "onnx", "--output", tmp_path / "onnx")

    assert code == 0 and summary["class_names"] == ["blue", "green", "red"]
    assert summary["parity"]["image_cosine"] >= 0.9999 and summary["parity"]["text_cosine"] >= 0.9999


def test_export_prints_a_one_line_summary(cli, tiny_dual_dir, tmp_path):
    code, out, _ = cli("export", tiny_dual_dir, "--format", "hf", "--output", tmp_path / "dual")

    assert code == 0 and out.startswith("Exported ") and "dual_encoder" in out and len(out.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "tflite", "--output", "x"],  # unknown format
        ["--format", "hf"],  # no --output
        ["--output", "x"],  # no --format
    ],
)
def test_wrong_arguments_exit_2(cli, tiny_clip_dir, tmp_path, argv):
    code, _, err = cli("export", tiny_clip_dir, *argv)

    assert code == 2 and "error" in err


def test_a_non_empty_output_exits_2_naming_overwrite(cli, tiny_clip_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")

    code, _, err = cli("export", tiny_clip_dir, "--format", "hf", "--output", tmp_path / "out")

    assert code == 2 and "--overwrite" in one_error_line(err)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_onnx_without_the_export_extra_exits_2_saying_what_to_install(cli, tiny_clip_dir, tmp_path, monkeypatch):
    real = onnx_export.importlib.util.find_spec
    monkeypatch.setattr(onnx_export.importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real(n, *a))

    code, _, err = cli("export", tiny_clip_dir, "--format", "onnx", "--output", tmp_path / "o")

    assert code == 2 and "pip install clipstudio[export]" in one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_a_missing_model_exits_2(cli, tmp_path):
    code, _, err = cli("export", tmp_path / "nowhere", "--format", "hf", "--output", tmp_path / "o")

    assert code == 2 and one_error_line(err)
    assert not (tmp_path / "o").exists()
