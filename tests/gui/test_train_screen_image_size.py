"""The Train screen's log says when small images train at a smaller size on the CPU, and the form shows it on resume."""

from __future__ import annotations

from pathlib import Path

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.data import load_dataset
from clipstudio.gui.screens.train_screen import TrainScreen
from tests.fixtures_models import build_tiny_dual

RUN_TIMEOUT_MS = 120_000


def test_the_train_log_says_small_images_train_at_112_px(qtbot, app_state, tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "data", {"cyst": 6, "normal": 6})  # 8-px images
    app_state.set_dataset(load_dataset(root), str(root))
    app_state.model_spec = str(build_tiny_dual(tmp_path / "model", image_size=224))
    screen = TrainScreen(app_state)
    qtbot.addWidget(screen)
    screen.show()
    cfg = TrainConfig(method="full", epochs=1, batch_size=4, amp=False, warmup_steps=1)
    cfg.model.device = "cpu"
    cfg.output = str(tmp_path / "run")
    screen.form.set_config(cfg)
    try:
        assert screen.start()
        qtbot.waitUntil(lambda: not screen.busy() and screen._worker is None, timeout=RUN_TIMEOUT_MS)
        log = screen.log.toPlainText()
        assert "Training at 112 px instead of the model's 224 px: the images are small (8 px across)" in log
        assert screen.form.img_size.value() == 0  # the form keeps "model default" for the next run
        assert Path(cfg.output, "config.json").is_file()
    finally:
        screen.shutdown()
