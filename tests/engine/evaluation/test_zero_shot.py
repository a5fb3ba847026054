from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.zero_shot import (
    class_text_embeddings,
    class_weights,
    compare_prompt_sets,
    evaluate_zero_shot,
    score_dataset,
    score_embeddings,
)
from clipstudio.engine.models.linear_probe_head import ClassWeights
from clipstudio.engine.prompts import DEFAULT_TEMPLATES, PromptSet
from tests.engine.fake_model import COLOURS, FakeModel, text_vector, write_png

E = np.eye(3, dtype=np.float32)


def _three_class_example():
    """6 images, 3 one-hot class texts. Truth/prediction pairs: 0->0, 0->0, 0->1, 1->1, 1->2, 2->2."""
    image_emb = E[[0, 0, 1, 1, 2, 2]]
    labels = np.array([0, 0, 0, 1, 1, 2])
    return image_emb, labels


def test_zero_shot_metrics_match_hand_computed_values():
    image_emb, labels = _three_class_example()
    r = score_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)

    assert r.n == 6
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert r.confusion_matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r.per_class["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r.per_class["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r.per_class["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r.top5_accuracy is None


def test_predictions_list_top_classes_with_softmax_probabilities():
    image_emb, labels = _three_class_example()
    paths = [f"img{i}.png" for i in range(6)]
    r = score_embeddings(
        image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0, paths=paths, top_k=2
    )
    p = r.predictions[2]
    assert (p["path"], p["true"], p["pred"]) == ("img2.png", "a", "b")
    top = np.exp(10.0) / (np.exp(10.0) + 2)
    assert p["topk"][0] == ["b", pytest.approx(top)]
    assert p["topk"][1][1] == pytest.approx(1 / (np.exp(10.0) + 2))
    assert len(p["topk"]) == 2


def test_bootstrap_ci_brackets_the_estimates_and_is_reproducible():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=200)
    noisy = E[labels] + rng.normal(scale=0.6, size=(200, 3))
    r = score_embeddings(noisy, labels, E, ["a", "b", "c"], logit_scale=100.0)
    for key in ("accuracy", "balanced_accuracy"):
        lo, hi = r.ci95[key]
        assert 0.0 <= lo <= getattr(r, key) <= hi <= 1.0
        assert hi - lo > 0.01
    again = score_embeddings(noisy, labels, E, ["a", "b", "c"], logit_scale=100.0)
    assert again.ci95 == r.ci95


def test_top5_accuracy_only_with_six_or_more_classes():
    eye7 = np.eye(7, dtype=np.float32)
    names = [f"c{i}" for i in range(7)]
    correct = eye7[0]
    second = eye7[1] + 0.5 * eye7[0]  # true class ranks 2nd
    last = np.array([0, 6, 5, 4, 3, 2, 1], dtype=np.float32)  # true class ranks 7th
    r = score_embeddings(
        np.stack([correct, second, last]), np.zeros(3, int), eye7, names, logit_scale=50.0
    )
    assert r.accuracy == pytest.approx(1 / 3)
    assert r.top5_accuracy == pytest.approx(2 / 3)
    assert r.to_dict()["top5_accuracy"] == pytest.approx(2 / 3)

    image_emb, labels = _three_class_example()
    small = score_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)
    assert "top5_accuracy" not in small.to_dict()


def test_a_class_without_images_neither_crashes_nor_counts_towards_balanced_accuracy():
    image_emb = E[[0, 0, 1]]
    labels = np.array([0, 0, 0])  # class "b" has no images, "c" neither
    r = score_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)
    assert r.balanced_accuracy == pytest.approx(2 / 3)
    assert r.per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r.confusion_matrix == [[2, 1, 0], [0, 0, 0], [0, 0, 0]]
    lo, hi = r.ci95["balanced_accuracy"]
    assert lo <= r.balanced_accuracy <= hi


def test_to_dict_is_plain_json():
    image_emb, labels = _three_class_example()
    r = score_embeddings(
        image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0, paths=list("uvwxyz")
    )
    plain = r.to_dict()
    assert set(plain) >= {
        "n",
        "classes",
        "accuracy",
        "balanced_accuracy",
        "per_class",
        "confusion_matrix",
        "ci95",
        "problems",
    }
    assert "predictions" not in plain
    full = json.loads(json.dumps(r.to_dict(include_predictions=True)))
    assert full["classes"] == ["a", "b", "c"]
    assert len(full["predictions"]) == 6 and full["predictions"][0]["path"] == "u"


def _embeddings_predicting(pred: np.ndarray, n_classes: int, rng) -> np.ndarray:
    """Images that one-hot class texts classify as ``pred``, each at a random length (not unit)."""
    lengths = rng.uniform(0.2, 5.0, size=(len(pred), 1))
    return (np.eye(n_classes)[pred] * lengths).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_metrics_equal_sklearns_with_classes_never_seen_or_never_predicted(seed):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    n_classes, n = 7, 400
    labels = rng.choice([0, 1, 2, 4, 5], size=n)  # classes 3 and 6 have no images
    pred = np.where(rng.random(n) < 0.6, labels, rng.choice([0, 1, 3, 4], size=n))
    pred[pred == 5] = 0  # class 5 has images but is never predicted; 6 is neither
    names = [f"c{i}" for i in range(n_classes)]
    r = score_embeddings(
        _embeddings_predicting(pred, n_classes, rng),
        labels,
        np.eye(n_classes),
        names,
        logit_scale=100.0,
        n_bootstrap=0,
    )

    ids = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, pred, labels=ids, zero_division=0
    )
    assert r.confusion_matrix == confusion_matrix(labels, pred, labels=ids).tolist()
    for c, name in enumerate(names):
        assert r.per_class[name] == {
            "precision": precision[c],
            "recall": recall[c],
            "f1": f1[c],
            "support": support[c],
        }
    assert r.accuracy == np.mean(pred == labels)
    assert r.balanced_accuracy == np.mean(recall[support > 0])
    assert r.per_class["c6"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_bootstrap_ci_is_the_percentile_interval_over_resampled_images():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=150)
    pred = np.where(rng.random(150) < 0.7, labels, rng.integers(0, 4, size=150))
    r = score_embeddings(
        _embeddings_predicting(pred, 4, rng),
        labels,
        np.eye(4),
        list("abcd"),
        logit_scale=100.0,
        n_bootstrap=500,
        seed=7,
    )

    idx = np.random.default_rng(7).integers(0, 150, size=(500, 150))
    accs = [np.mean(pred[i] == labels[i]) for i in idx]
    baccs = [np.mean([np.mean(pred[i][labels[i] == c] == c) for c in np.unique(labels[i])]) for i in idx]
    assert r.ci95["accuracy"] == pytest.approx(np.percentile(accs, [2.5, 97.5]), abs=1e-12)
    assert r.ci95["balanced_accuracy"] == pytest.approx(np.percentile(baccs, [2.5, 97.5]), abs=1e-12)


def test_a_gallery_not_of_unit_length_scores_like_its_normalised_copy_and_is_left_untouched():
    from clipstudio.engine.embeddings import l2_normalise

    rng = np.random.default_rng(0)
    gallery = (rng.normal(size=(60, 8)) * rng.uniform(0.1, 10.0, size=(60, 1))).astype(np.float32)
    gallery[5] = 0.0  # an all-zero row stays a valid (if useless) image
    gallery.flags.writeable = False  # e.g. a memory-mapped cache: read, never written
    before = gallery.copy()
    labels = rng.integers(0, 6, size=60)
    texts = rng.normal(size=(6, 8))
    names = [f"c{i}" for i in range(6)]
    kwargs = {"logit_scale": 30.0, "n_bootstrap": 100, "top_k": 3}

    raw = score_embeddings(gallery, labels, texts, names, **kwargs).to_dict(include_predictions=True)
    unit = score_embeddings(l2_normalise(gallery), labels, texts, names, **kwargs).to_dict(
        include_predictions=True
    )
    np.testing.assert_array_equal(gallery, before)
    raw_predictions, unit_predictions = raw.pop("predictions"), unit.pop("predictions")
    assert raw == unit
    for a, b in zip(raw_predictions, unit_predictions, strict=True):
        assert [name for name, _ in a["topk"]] == [name for name, _ in b["topk"]]
        assert [p for _, p in a["topk"]] == pytest.approx([p for _, p in b["topk"]], rel=1e-5, abs=1e-9)
    assert sum(p for _, p in raw_predictions[5]["topk"]) == pytest.approx(3 / 6)  # zero row: uniform


# --- zero-shot on files -------------------------------------------------------------------------


def _colour_dataset(tmp_path, items, class_names=("red", "green", "blue")):
    """items: (file stem, colour, label, captions)."""
    samples = [
        Sample(path=write_png(tmp_path / "imgs" / f"{stem}.png", COLOURS[colour]), label=label, captions=caps)
        for stem, colour, label, caps in items
    ]
    return Dataset(root=tmp_path, format="test", samples=samples, class_names=list(class_names))


def test_evaluate_zero_shot_scores_images_and_lists_unreadable_ones(tmp_path):
    ds = _colour_dataset(
        tmp_path,
        [
            ("r1", "red", 0, []),
            ("r2", "red", 0, []),
            ("g1", "green", 1, []),
            ("b1", "blue", 2, []),
            ("odd", "green", 2, []),  # labelled blue but green: a miss
        ],
    )
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(b"garbage")
    ds.samples.append(Sample(path=broken, label=1))

    model = FakeModel()
    r = evaluate_zero_shot(model, ds, PromptSet(), cache=EmbeddingCache())
    assert r.n == 5
    assert r.accuracy == pytest.approx(4 / 5)
    assert r.balanced_accuracy == pytest.approx((1 + 1 + 0.5) / 3)
    assert r.confusion_matrix == [[2, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert [p.path for p in r.problems] == [str(broken)]
    assert r.to_dict()["problems"][0]["path"] == str(broken)
    preds = {p["path"]: p["pred"] for p in r.predictions}
    assert preds[str(tmp_path / "imgs" / "odd.png")] == "green"

    again = FakeModel()
    evaluate_zero_shot(again, ds, PromptSet(), cache=EmbeddingCache())
    assert again.image_calls == 0


def test_evaluate_zero_shot_needs_a_labelled_multiclass_dataset(tmp_path):
    one_class = _colour_dataset(tmp_path, [("r1", "red", 0, [])], class_names=["red"])
    with pytest.raises(DataError, match="at least 2 classes"):
        evaluate_zero_shot(FakeModel(), one_class, PromptSet())
    unlabelled = _colour_dataset(tmp_path, [("r1", "red", 0, []), ("x", "blue", None, [])])
    with pytest.raises(DataError, match="1 have none"):
        evaluate_zero_shot(FakeModel(), unlabelled, PromptSet())


def test_evaluate_zero_shot_with_no_readable_image_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    ds = Dataset(root=tmp_path, format="test", samples=[Sample(bad, 0)], class_names=["red", "green"])
    with pytest.raises(DataError, match="none of the 1 images"):
        evaluate_zero_shot(FakeModel(), ds, PromptSet())


def test_cancelled_zero_shot_reports_the_images_done(tmp_path):
    ds = _colour_dataset(tmp_path, [(f"r{i}", "red", 0, []) for i in range(4)] + [("g", "green", 1, [])])
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 2

    r = evaluate_zero_shot(FakeModel(), ds, PromptSet(), batch_size=2, should_stop=should_stop)
    assert r.cancelled and r.n == 2 and r.accuracy == 1.0
    assert r.to_dict()["cancelled"] is True


def test_zero_shot_cancelled_before_any_image_is_an_empty_result(tmp_path):
    ds = _colour_dataset(tmp_path, [("r", "red", 0, []), ("g", "green", 1, [])])
    r = evaluate_zero_shot(FakeModel(), ds, PromptSet(), should_stop=lambda: True)
    plain = json.loads(json.dumps(r.to_dict(include_predictions=True)))
    assert plain["cancelled"] is True and plain["n"] == 0
    assert plain["accuracy"] is None and plain["ci95"] == {} and plain["predictions"] == []
    assert plain["confusion_matrix"] == [[0, 0, 0]] * 3


def test_zero_shot_runs_on_a_tiny_real_clip(request, tmp_path):
    """Integration with a real (tiny, random) HF CLIP: only runs once that fixture exists."""
    try:
        folder = request.getfixturevalue("tiny_clip_dir")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_clip_dir fixture not available")
    models = pytest.importorskip("clipstudio.engine.models")
    if not hasattr(models, "load_model"):
        pytest.skip("clipstudio.engine.models.load_model not available")
    model = models.load_model(str(folder))
    ds = _colour_dataset(tmp_path, [("r", "red", 0, []), ("g", "green", 1, []), ("b", "blue", 2, [])])
    cache = EmbeddingCache()
    r = evaluate_zero_shot(model, ds, PromptSet(), cache=cache)
    assert r.n == 3 and 0.0 <= r.accuracy <= 1.0
    assert len(r.predictions) == 3
    second = evaluate_zero_shot(model, ds, PromptSet(), cache=cache)
    assert second.to_dict() == r.to_dict()


# --- class embeddings ---------------------------------------------------------------------------


def test_class_embedding_is_the_normalised_mean_of_normalised_prompt_embeddings():
    model = FakeModel()
    prompts = PromptSet(
        templates=["a photo of {class_name}.", "{class_name} tissue"],
        class_texts={"blue": ["blue", "cyan dye"]},
    )
    emb = class_text_embeddings(model, ["red", "blue"], prompts, batch_size=3)

    def ensemble(texts):
        mean = np.mean([text_vector(t) for t in texts], axis=0)
        return mean / np.linalg.norm(mean)

    assert emb.shape == (2, 6) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[0], ensemble(["a photo of red.", "red tissue"]), atol=1e-6)
    np.testing.assert_allclose(emb[1], ensemble(["blue", "cyan dye"]), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert model.text_calls == 2  # 4 texts in batches of 3


class _HeadModel(FakeModel):
    """A FakeModel with a trained class head, like a linear-probe run: it knows red and green."""

    def class_weights(self, class_names):
        rows = {"red": [0, 1, 0, 0, 0, 0], "green": [1, 0, 0, 0, 0, 0]}  # deliberately swapped
        if any(name not in rows for name in class_names):
            return None
        return ClassWeights(np.array([rows[name] for name in class_names], dtype=np.float32), 100.0)


def test_a_model_with_its_own_head_scores_with_it_and_without_the_classes_uses_prompts(tmp_path):
    ds = _colour_dataset(tmp_path, [("r", "red", 0, []), ("g", "green", 1, [])], class_names=["red", "green"])
    model = _HeadModel()
    np.testing.assert_array_equal(class_weights(model, ["red", "green"], PromptSet()).rows[0], [0, 1, 0, 0, 0, 0])
    assert model.text_calls == 0  # the head needs no prompts
    assert evaluate_zero_shot(model, ds, PromptSet()).accuracy == 0.0  # the swapped head gets both wrong

    three = _colour_dataset(tmp_path / "3", [("r", "red", 0, []), ("b", "blue", 2, [])])
    assert evaluate_zero_shot(model, three, PromptSet()).accuracy == 1.0  # no head row for blue: prompts


# --- scoring from a store, comparing prompt sets ------------------------------------------------


def _six_colour_images(tmp_path: Path):
    return _colour_dataset(
        tmp_path,
        [(f"{c}{i}", c, label, []) for label, c in enumerate(["red", "green", "blue"]) for i in range(2)],
    )


def test_scoring_from_a_store_encodes_the_images_once_and_equals_evaluate_zero_shot(tmp_path):
    ds = _six_colour_images(tmp_path)
    model, store = FakeModel(), EmbeddingStore()
    first = score_dataset(store, model, ds, PromptSet())
    second = score_dataset(store, model, ds, PromptSet(name="again"))
    assert model.images_encoded == 6  # the second scoring took the store's embeddings
    assert first.to_dict(include_predictions=True) == second.to_dict(include_predictions=True)
    assert first.to_dict(include_predictions=True) == evaluate_zero_shot(
        FakeModel(), ds, PromptSet()
    ).to_dict(include_predictions=True)


def test_compare_prompt_sets_scores_each_set_and_encodes_only_texts(tmp_path):
    ds = _six_colour_images(tmp_path)
    model, store = FakeModel(), EmbeddingStore()
    good = PromptSet(name="templates")
    shuffled = PromptSet(name="shuffled", class_texts={"red": ["green"], "green": ["blue"], "blue": ["red"]})
    rows = compare_prompt_sets(store, model, ds, [good, shuffled])

    assert [r["name"] for r in rows] == ["templates", "shuffled"]
    assert rows[0]["accuracy"] == 1.0 and rows[0]["balanced_accuracy"] == 1.0
    assert rows[1]["accuracy"] == 0.0
    assert rows[0]["per_class_recall"] == {"red": 1.0, "green": 1.0, "blue": 1.0}
    assert model.images_encoded == 6  # once, for both sets
    assert len(model.texts_encoded) == 3 * len(DEFAULT_TEMPLATES) + 3
    json.dumps(rows)


def test_compare_prompt_sets_reports_no_recall_for_a_class_without_images(tmp_path):
    ds = _colour_dataset(tmp_path, [("r", "red", 0, []), ("g", "green", 1, [])])
    rows = compare_prompt_sets(EmbeddingStore(), FakeModel(), ds, [PromptSet()])
    assert rows[0]["per_class_recall"] == {"red": 1.0, "green": 1.0, "blue": None}
    assert rows[0]["balanced_accuracy"] == 1.0


def test_rescoring_after_an_edit_encodes_only_the_edited_texts_and_scores_as_without_a_cache(tmp_path):
    ds = _six_colour_images(tmp_path)
    model, store = FakeModel(), EmbeddingStore()
    first = PromptSet(name="first", templates=["a photo of {class_name}.", "{class_name} cells"])
    edited = PromptSet(name="edited", templates=["a photo of {class_name}.", "{class_name} stain"])
    compare_prompt_sets(store, model, ds, [first])

    before = len(model.texts_encoded)
    rows = compare_prompt_sets(store, model, ds, [edited])
    assert model.texts_encoded[before:] == ["red stain", "green stain", "blue stain"]
    assert rows == compare_prompt_sets(EmbeddingStore(), FakeModel(), ds, [edited])


def test_comparing_prompt_sets_stops_when_cancelled(tmp_path):
    ds = _six_colour_images(tmp_path)
    rows = compare_prompt_sets(EmbeddingStore(), FakeModel(), ds, [PromptSet(), PromptSet()], should_stop=lambda: True)
    assert rows == []


def test_logits_are_kept_only_when_asked_and_are_the_scaled_cosines_the_probabilities_come_from():
    image_emb, labels = _three_class_example()
    image_emb = image_emb * np.array([[1.0], [3.0], [0.5], [2.0], [1.0], [4.0]], dtype=np.float32)  # not unit length
    assert score_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0).logits is None

    r = score_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0, with_logits=True, top_k=3)
    assert r.logits.dtype == np.float32 and r.logits.shape == (6, 3)
    np.testing.assert_allclose(r.logits, 10.0 * E[[0, 0, 1, 1, 2, 2]], atol=1e-6)
    np.testing.assert_array_equal(r.labels, labels)
    p = r.predictions[1]["topk"]
    z = np.exp(r.logits[1] - r.logits[1].max())
    assert p[0][1] == pytest.approx(float(z.max() / z.sum()), rel=1e-6)
    assert "logits" not in r.to_dict() and "labels" not in r.to_dict()
