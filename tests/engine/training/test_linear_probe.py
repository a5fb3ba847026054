"""Linear probe: logistic regression on frozen embeddings, as scikit-learn fits it, starting at zero-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clipstudio.engine.data.readers import load_dataset
from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot
from clipstudio.engine.events import EvalEnded, MessageLogged
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.training.methods.linear_probe import path_strengths, solve_probe
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_runs import stop_after_two_epochs_and_resume


def _problem(n_per_class=40, dim=16, classes=3, spread=0.8, seed=0):
    """Unit-length features of a few overlapping Gaussian classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(classes), n_per_class)
    return x, y


def _fit(x, y, strength, prior=None, should_stop=lambda: False):
    classes, dim = int(y.max()) + 1, x.shape[1]
    prior = torch.zeros(classes, dim, dtype=torch.float64) if prior is None else prior
    weight = torch.nn.Parameter(prior.clone())
    bias = torch.nn.Parameter(torch.zeros(classes, dtype=torch.float64))
    done = solve_probe(weight, bias, torch.from_numpy(x), torch.from_numpy(y), prior, strength, should_stop)
    return weight.detach(), bias.detach(), done


def test_the_probe_is_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression  # a test-only reference

    x, y = _problem()
    for c in (0.1, 1.0, 100.0):
        weight, bias, _ = _fit(x, y, strength=1.0 / (c * len(y)))
        ours = torch.softmax(torch.from_numpy(x) @ weight.t() + bias, dim=1).numpy()
        reference = LogisticRegression(C=c, max_iter=10_000, tol=1e-10).fit(x, y).predict_proba(x)
        np.testing.assert_allclose(ours, reference, atol=1e-3)  # our gradient tolerance: 1e-5


def test_with_two_classes_the_probe_is_scikit_learns_binary_fit_at_the_same_strength():
    # scikit-learn fits one row for two classes; a two-row softmax with the same penalty regularised
    # half as much, so the probe's path meant other strengths than the reference's on binary sets.
    from sklearn.linear_model import LogisticRegression  # a test-only reference

    x, y = _problem(classes=2, spread=1.2)
    for c in (0.05, 1.0):
        weight, bias, _ = _fit(x, y, strength=1.0 / (c * len(y)))
        ours = torch.softmax(torch.from_numpy(x) @ weight.t() + bias, dim=1).numpy()
        reference = LogisticRegression(C=c, max_iter=10_000, tol=1e-10).fit(x, y).predict_proba(x)
        np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_a_strong_text_prior_keeps_the_zero_shot_head_and_a_weak_one_fits_the_data():
    x, y = _problem(spread=1.5)
    rng = np.random.default_rng(1)
    zero_shot = torch.from_numpy(rng.normal(size=(3, x.shape[1])))
    strong, _, _ = _fit(x, y, strength=1e4, prior=zero_shot)
    assert torch.allclose(strong, zero_shot, atol=1e-3)
    weak, bias, _ = _fit(x, y, strength=1e-4, prior=zero_shot)
    train_acc = float(((torch.from_numpy(x) @ weak.t() + bias).argmax(1).numpy() == y).mean())
    zero_shot_acc = float(((x @ zero_shot.numpy().T).argmax(1) == y).mean())
    assert train_acc > zero_shot_acc + 0.2


def test_a_stopped_solve_says_so_and_the_path_runs_strong_to_weak():
    x, y = _problem()
    _, _, done = _fit(x, y, strength=1e-4, should_stop=lambda: True)
    assert done is False
    strengths = path_strengths(5)
    assert strengths[0] == 1.0 and strengths[-1] == pytest.approx(1e-6) and np.all(np.diff(strengths) < 0)
    assert len(path_strengths(1)) == 1


@pytest.mark.slow
def test_epoch_zero_equals_zero_shot_and_the_head_loads_back(class_data, tiny_clip_dir, make_cfg, recorder):
    cfg = make_cfg(class_data, tiny_clip_dir, method="linear_probe", epochs=3, save_best=True)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    initial = recorder.of(EvalEnded)[0]
    assert initial.epoch == 0
    # Zero-shot on the same validation images with the same prompts, computed independently.
    model = load_model(str(tiny_clip_dir), device="cpu")
    dataset = load_dataset(class_data)
    val_paths = set(json.loads((result.run_dir / "splits.json").read_text(encoding="utf-8"))["val"])
    val = dataset.subset([i for i, s in enumerate(dataset.samples) if str(s.path) in val_paths])
    zero_shot = evaluate_zero_shot(model, val, PromptSet())
    metrics = initial.as_dict()
    assert metrics["val_acc"] == pytest.approx(zero_shot.accuracy)
    assert metrics["val_balanced_acc"] == pytest.approx(zero_shot.balanced_accuracy)
    # Each epoch tried a weaker penalty, and said so.
    notes = [e.text for e in recorder.of(MessageLogged) if e.text.startswith("Linear probe: L2 strength")]
    assert len(notes) == 3 and "1.0e+00" in notes[0] and "1.0e-06" in notes[2]
    assert result.history["lr"] == pytest.approx(list(path_strengths(3)))

    probe = load_run_model(result.run_dir, device="cpu")
    assert isinstance(probe, LinearProbeModel)
    head = probe.class_weights(dataset.class_names)
    assert head.rows.shape == (3, model.embed_dim) and head.bias.shape == (3,) and head.scale == 1.0
    assert probe.class_weights(["unknown"]) is None
    # The run's best checkpoint scores the validation images as its epoch did.
    best = result.history["best_epoch"]
    scored = evaluate_zero_shot(probe, val, PromptSet())
    assert scored.balanced_accuracy == pytest.approx(result.history["val_balanced_acc"][best - 1])
    # Encoding is the frozen model's.
    assert np.allclose(probe.encode_texts(["red"]).numpy(), model.encode_texts(["red"]).numpy(), atol=1e-6)


@pytest.mark.slow
def test_a_probe_stopped_mid_path_resumes_to_the_same_head(class_data, tiny_clip_dir, make_cfg, tmp_path):
    cfg = make_cfg(class_data, tiny_clip_dir, method="linear_probe", epochs=4, save_best=False)
    whole, resumed = stop_after_two_epochs_and_resume(cfg, tmp_path)
    a = load_run_model(whole.run_dir, which="latest", device="cpu").head
    b = load_run_model(resumed.run_dir, which="latest", device="cpu").head
    np.testing.assert_allclose(a.rows, b.rows, atol=1e-4)
    np.testing.assert_allclose(a.bias - a.bias.mean(), b.bias - b.bias.mean(), atol=1e-4)


def test_auto_leans_on_the_prompts_only_where_they_beat_chance_on_validation():
    from clipstudio.engine.training.methods.linear_probe import LinearProbeMethod, ProbeSplit

    x, y = _problem(n_per_class=10, classes=2)
    method = object.__new__(LinearProbeMethod)  # only the rule: no model or run needed
    method.val, method.class_names = ProbeSplit(x.astype(np.float32), y, list(range(len(y)))), ["a", "b"]
    centres = np.stack([x[y == c].mean(axis=0) for c in (0, 1)])
    good, why = method._choose_prior("auto", centres, 100.0)
    assert good == "text" and "chance 0.50" in why
    bad, why = method._choose_prior("auto", centres[::-1].copy(), 100.0)  # prompts that swap the classes
    assert bad == "none" and "does not lean on them" in why
    assert method._choose_prior("text", centres[::-1].copy(), 100.0) == ("text", "as set")


def test_auto_does_not_lean_on_prompts_that_beat_chance_only_by_noise():
    from clipstudio.engine.training.methods.linear_probe import LinearProbeMethod, ProbeSplit, chance_margin

    # 2 x 20 validation images; "prompts" that get 12 of 20 of each class right: 0.60 balanced accuracy.
    # That beats chance (0.50), but guessing gets there more often than 1 time in 20 on 40 images.
    y = np.repeat([0, 1], 20)
    right = np.tile(np.arange(20) < 12, 2)
    x = np.zeros((40, 2), np.float32)
    x[np.arange(40), np.where(right, y, 1 - y)] = 1.0
    method = object.__new__(LinearProbeMethod)
    method.val, method.class_names = ProbeSplit(x, y, list(range(40))), ["a", "b"]
    prior, why = method._choose_prior("auto", np.eye(2, dtype=np.float32), 100.0)
    assert prior == "none" and "0.60 balanced accuracy" in why and "0.63 would show" in why
    assert chance_margin(y, 2) == pytest.approx(0.5 + 1.645 * np.sqrt(2 * 0.25 / 20) / 2)
    assert chance_margin(np.repeat([0, 1], 2000), 2) < 0.52  # on many images a small lead is real
