"""Image-embedding keys: a run that left the image encoder as it was reuses its starting model's cached images."""

from __future__ import annotations

from pathlib import Path

import torch

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.embeddings import encode_image_files
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.fingerprint import adopt_image_embeddings, image_encoder_digest
from clipstudio.engine.runs.layout import read_run_info
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_runs import colour_classes


def _train(data: Path, start_dir: Path, output: Path, method: str, model=None) -> Path:
    cfg = TrainConfig(
        data=DataConfig(path=str(data)),
        model=ModelConfig(spec=str(start_dir), device="cpu"),
        output=str(output),
        method=method,
        epochs=1,
        batch_size=6,
        learning_rate=1e-2,
        warmup_steps=0,
        amp=False,
        num_workers=1,
    )
    result = Trainer(cfg, model=model).fit()
    assert result.status == "completed"
    return result.run_dir


def _image_caches() -> list[Path]:
    return sorted(p for p in EmbeddingCache().root.iterdir() if p.is_dir())


def test_a_linear_probe_run_encodes_no_image_the_zero_shot_scoring_encoded(tmp_path, tiny_dual_dir):
    data = colour_classes(tmp_path / "data")
    paths = sorted(data.rglob("*.png"))
    start = load_model(str(tiny_dual_dir), device="cpu")
    start.kind = "builtin"  # as load_builtin labels the built-in model; the run's saved copy reads "dual_encoder"
    zero_shot = EmbeddingStore(EmbeddingCache()).image_embeddings(start, paths)
    assert zero_shot.n_encoded == len(paths)

    run_dir = _train(data, tiny_dual_dir, tmp_path / "probe", "linear_probe", model=start)
    probe = load_run_model(run_dir, device="cpu")
    results = EmbeddingStore(EmbeddingCache()).image_embeddings(probe, paths)  # the Results screen's path

    assert (results.n_encoded, results.n_cached) == (0, len(paths))
    assert len(_image_caches()) == 1  # no second cache
    assert torch.allclose(torch.from_numpy(results.embeddings), torch.from_numpy(zero_shot.embeddings))


def test_a_lock_image_run_shares_the_image_embeddings_but_not_the_text_ones(tmp_path, tiny_clip_dir):
    data = colour_classes(tmp_path / "data")
    paths = sorted(data.rglob("*.png"))
    start = load_model(str(tiny_clip_dir), device="cpu")
    assert encode_image_files(start, paths, cache=EmbeddingCache()).n_encoded == len(paths)

    tuned = load_run_model(_train(data, tiny_clip_dir, tmp_path / "lit", "lock_image"), device="cpu")

    assert tuned.fingerprint() != start.fingerprint()  # the text tower learned: texts are encoded anew
    assert tuned.image_fingerprint() == start.image_fingerprint()
    assert encode_image_files(tuned, paths, cache=EmbeddingCache()).n_encoded == 0
    with torch.no_grad():  # e.g. WiSE-FT mixing the weights in place: the images must be encoded again
        next(tuned.torch_module.vision_model.parameters()).add_(0.5)
    assert tuned.image_fingerprint() == tuned.fingerprint() != start.image_fingerprint()


def test_a_fully_fine_tuned_run_keeps_its_own_image_key(trained):
    start = load_model(str(trained["start"]), device="cpu")
    tuned = load_run_model(trained["full"], device="cpu")
    assert "image_encoder" not in read_run_info(trained["full"])
    assert tuned.image_fingerprint() == tuned.fingerprint() != start.image_fingerprint()


def test_a_record_that_does_not_match_the_weights_is_not_adopted(tiny_clip_dir):
    model = load_model(str(tiny_clip_dir), device="cpu")
    own = model.fingerprint()
    assert not adopt_image_embeddings(model, {"fingerprint": "someone-else", "digest": "0" * 64})
    assert not adopt_image_embeddings(model, None)
    assert model.image_fingerprint() == own
    assert adopt_image_embeddings(model, {"fingerprint": "same-images", "digest": image_encoder_digest(model)})
    assert model.image_fingerprint() == "same-images"
