"""Tip-Adapter and Tip-Adapter-F: zero-shot plus a cache of the training images, alpha and beta chosen on validation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from clipstudio.engine.data.readers import load_dataset
from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot
from clipstudio.engine.events import EvalEnded, MessageLogged
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.tip_adapter_head import TipAdapterCache, TipAdapterModel
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.training.methods.tip_adapter import search_alpha_beta
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_runs import stop_after_two_epochs_and_resume


def _problem(n_per_class=30, dim=16, classes=3, spread=0.6, seed=0):
    """Unit-length features of a few Gaussian classes, and a zero-shot head that knows little of them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(classes), n_per_class)
    text = centres + 4.0 * rng.normal(size=centres.shape)
    return x, y, text / np.linalg.norm(text, axis=1, keepdims=True)


def _cache(x, y, text, alpha=0.0, beta=5.0):
    values = np.eye(len(text), dtype=np.float32)[y]
    return TipAdapterCache(x.astype(np.float32), values, text.astype(np.float32), 50.0, alpha, beta)


def _balanced(logits, y):
    hit = logits.argmax(1) == y
    return np.mean([hit[y == c].mean() for c in np.unique(y)])


def test_alpha_zero_is_zero_shot_and_the_cache_adds_the_papers_term():
    x, y, text = _problem()
    images = 3.0 * x[:7]  # any length: the cache normalises
    cache = _cache(x, y, text, alpha=0.0)
    np.testing.assert_allclose(cache.logits(images), 50.0 * x[:7] @ cache.text_rows.T.astype(np.float64), atol=1e-9)
    np.testing.assert_allclose(cache.logits(images), cache.zero_shot().logits(images), atol=1e-4)
    blended = dataclasses.replace(cache, alpha=2.0, beta=3.0)
    affinity = np.exp(-3.0 * (1.0 - x[:7] @ cache.keys.T.astype(np.float64)))
    expected = 50.0 * x[:7] @ cache.text_rows.T.astype(np.float64) + 2.0 * affinity @ np.eye(3)[y]
    np.testing.assert_allclose(blended.logits(images), expected, rtol=1e-6)


def test_the_search_beats_zero_shot_on_validation_and_keeps_it_when_the_cache_only_hurts():
    every_x, every_y, text = _problem(n_per_class=40, spread=1.0)
    x, y, val_x, val_y = every_x[::2], every_y[::2], every_x[1::2], every_y[1::2]
    cache = _cache(x, y, text)
    choice = search_alpha_beta(cache, val_x, val_y)
    zero_shot = _balanced(val_x @ text.T, val_y)
    assert choice.alpha > 0 and choice.balanced_accuracy > zero_shot + 0.1
    # A cache whose labels are all wrong can only hurt: the search keeps zero-shot (alpha 0).
    wrong = _cache(x, (y + 1) % 3, text)
    assert search_alpha_beta(wrong, val_x, val_y).alpha == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tip_adapter", "tip_adapter_f"])
def test_a_run_beats_zero_shot_and_reloads_to_the_same_scores(method, class_data, tiny_clip_dir, make_cfg, recorder):
    cfg = make_cfg(class_data, tiny_clip_dir, method=method, epochs=3, save_best=True, batch_size=4)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    evals = recorder.of(EvalEnded)
    best = result.history["best_epoch"]
    best_bacc = result.history["val_balanced_acc"][best - 1]
    model = load_model(str(tiny_clip_dir), device="cpu")
    dataset = load_dataset(class_data)
    val_paths = set(json.loads((result.run_dir / "splits.json").read_text(encoding="utf-8"))["val"])
    val = dataset.subset([i for i, s in enumerate(dataset.samples) if str(s.path) in val_paths])
    zero_shot = evaluate_zero_shot(model, val, PromptSet())
    assert best_bacc > zero_shot.balanced_accuracy
    if method == "tip_adapter":
        # Training-free: one epoch whatever was asked, and epoch 0 is zero-shot exactly.
        assert len(result.history["epoch"]) == 1
        assert evals[0].as_dict()["val_balanced_acc"] == pytest.approx(zero_shot.balanced_accuracy)
        assert any("trains nothing" in e.text for e in recorder.of(MessageLogged))
    else:
        assert len(result.history["epoch"]) == 3
    tuned = load_run_model(result.run_dir, device="cpu")
    assert isinstance(tuned, TipAdapterModel)
    # The run scores the validation images as its best epoch did, through the same code as eval.
    scored = evaluate_zero_shot(tuned, val, PromptSet(["a photo of something {}"]))
    assert scored.balanced_accuracy == pytest.approx(best_bacc)
    # With alpha 0 the run is the frozen model's zero-shot classifier, prediction for prediction.
    again = evaluate_zero_shot(tuned.with_alpha(0.0), val, PromptSet())
    assert [p["pred"] for p in again.predictions] == [p["pred"] for p in zero_shot.predictions]
    assert tuned.class_scorer(["unknown"]) is None


@pytest.mark.slow
def test_a_tip_adapter_f_run_stopped_midway_resumes_to_the_same_cache(class_data, tiny_clip_dir, make_cfg, tmp_path):
    cfg = make_cfg(class_data, tiny_clip_dir, method="tip_adapter_f", epochs=4, batch_size=4)
    whole, resumed = stop_after_two_epochs_and_resume(cfg, tmp_path)
    a = load_run_model(whole.run_dir, which="latest", device="cpu").cache
    b = load_run_model(resumed.run_dir, which="latest", device="cpu").cache
    assert (a.alpha, a.beta) == (b.alpha, b.beta)
    np.testing.assert_allclose(a.keys, b.keys, atol=1e-6)
    # The keys trained: they no longer are the training images' unit embeddings.
    assert not np.allclose(np.linalg.norm(a.keys, axis=1), 1.0, atol=1e-4)
