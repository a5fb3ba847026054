"""`clipstudio train` says which image size it chose for small images on the CPU."""

from __future__ import annotations

from clipstudio.engine.runs.layout import read_run_config
from tests.fixtures_models import build_tiny_dual


def test_train_announces_the_automatic_image_size(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"a": 5, "b": 5})  # 8-px images
    model = build_tiny_dual(tmp_path / "model", image_size=224)
    out_dir = tmp_path / "run"

    code, out, err = cli("train", data, "--output", out_dir, "--model", model, "--epochs", "1",
                         "--batch-size", "4", "--no-amp", "--device", "cpu")

    assert code == 0, err
    assert "Training at 112 px instead of the model's 224 px: the images are small (8 px across)" in err
    assert read_run_config(out_dir).img_size == 112
