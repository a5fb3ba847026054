from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.evaluation import zero_shot as evaluate
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.embeddings import EmbeddingCache
from clipstudio.engine.errors import DataError, ImageError
from clipstudio.engine.evaluation.zero_shot import (
    evaluate_retrieval,
    evaluate_zero_shot,
    retrieval_from_embeddings,
    search_image,
    search_text,
    zero_shot_from_embeddings,
)
from clipstudio.engine.prompts import PromptSet
from tests.engine.fake_model import COLOURS, FakeModel, write_png

E = np.eye(3, dtype=np.float32)


def _three_class_example():
    """6 images, 3 one-hot class texts. Truth/prediction pairs: 0->0, 0->0, 0->1, 1->1, 1->2, 2->2."""
    image_emb = E[[0, 0, 1, 1, 2, 2]]
    labels = np.array([0, 0, 0, 1, 1, 2])
    return image_emb, labels


def test_zero_shot_metrics_match_hand_computed_values():
    image_emb, labels = _three_class_example()
    r = zero_shot_from_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)

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
    r = zero_shot_from_embeddings(
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
    r = zero_shot_from_embeddings(noisy, labels, E, ["a", "b", "c"], logit_scale=100.0)
    for key in ("accuracy", "balanced_accuracy"):
        lo, hi = r.ci95[key]
        assert 0.0 <= lo <= getattr(r, key) <= hi <= 1.0
        assert hi - lo > 0.01
    again = zero_shot_from_embeddings(noisy, labels, E, ["a", "b", "c"], logit_scale=100.0)
    assert again.ci95 == r.ci95


def test_top5_accuracy_only_with_six_or_more_classes():
    eye7 = np.eye(7, dtype=np.float32)
    names = [f"c{i}" for i in range(7)]
    correct = eye7[0]
    second = eye7[1] + 0.5 * eye7[0]  # true class ranks 2nd
    last = np.array([0, 6, 5, 4, 3, 2, 1], dtype=np.float32)  # true class ranks 7th
    r = zero_shot_from_embeddings(
        np.stack([correct, second, last]), np.zeros(3, int), eye7, names, logit_scale=50.0
    )
    assert r.accuracy == pytest.approx(1 / 3)
    assert r.top5_accuracy == pytest.approx(2 / 3)
    assert r.to_dict()["top5_accuracy"] == pytest.approx(2 / 3)

    image_emb, labels = _three_class_example()
    small = zero_shot_from_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)
    assert "top5_accuracy" not in small.to_dict()


def test_a_class_without_images_neither_crashes_nor_counts_towards_balanced_accuracy():
    image_emb = E[[0, 0, 1]]
    labels = np.array([0, 0, 0])  # class "b" has no images, "c" neither
    r = zero_shot_from_embeddings(image_emb, labels, E, ["a", "b", "c"], logit_scale=10.0)
    assert r.balanced_accuracy == pytest.approx(2 / 3)
    assert r.per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r.confusion_matrix == [[2, 1, 0], [0, 0, 0], [0, 0, 0]]
    lo, hi = r.ci95["balanced_accuracy"]
    assert lo <= r.balanced_accuracy <= hi


def test_to_dict_is_plain_json():
    image_emb, labels = _three_class_example()
    r = zero_shot_from_embeddings(
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
    r = zero_shot_from_embeddings(
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
    r = zero_shot_from_embeddings(
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

    raw = zero_shot_from_embeddings(gallery, labels, texts, names, **kwargs).to_dict(include_predictions=True)
    unit = zero_shot_from_embeddings(l2_normalise(gallery), labels, texts, names, **kwargs).to_dict(
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


# --- retrieval ----------------------------------------------------------------------------------


def _retrieval_example():
    """3 images (one-hot), 4 unit captions; image 0 has two captions.

    sims (images x captions):  I0 [1, 0, .6, .8]   I1 [0, 1, .8, 0]   I2 [0, 0, 0, .6]
    image->text ranks (best own caption): I0 1, I1 2 (T1 beats its T2), I2 1
    text->image ranks: T0 1, T1 3 (its 0 ties I2's 0 and ties count against), T2 1, T3 2 (I0 .8 > .6)
    """
    image_emb = E.copy()
    text_emb = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0.8, 0, 0.6]], dtype=np.float32)
    owner = np.array([0, 0, 1, 2])
    return image_emb, text_emb, owner


def test_retrieval_recall_and_ranks_match_hand_computed_values():
    r = retrieval_from_embeddings(*_retrieval_example(), ks=(1, 2, 5))
    assert (r.n, r.n_texts) == (3, 4)
    assert r.image_to_text == pytest.approx({"R@1": 2 / 3, "R@2": 1.0, "R@5": 1.0})
    assert r.text_to_image == pytest.approx({"R@1": 0.5, "R@2": 0.75, "R@5": 1.0})
    assert r.mean_rank == pytest.approx({"image_to_text": 4 / 3, "text_to_image": 7 / 4})
    assert r.median_rank == pytest.approx({"image_to_text": 1.0, "text_to_image": 1.5})
    json.dumps(r.to_dict())


def test_retrieval_gives_the_same_answer_when_computed_in_chunks(monkeypatch):
    whole = retrieval_from_embeddings(*_retrieval_example()).to_dict()
    monkeypatch.setattr(evaluate, "_CHUNK_CELLS", 4)  # one image row per chunk
    assert retrieval_from_embeddings(*_retrieval_example()).to_dict() == whole


def test_images_without_captions_are_distractors_not_queries():
    image_emb, text_emb, owner = _retrieval_example()
    distractor = np.array([[0.0, 0.0, 1.0]], dtype=np.float32)  # identical to I2
    r = retrieval_from_embeddings(np.vstack([image_emb, distractor]), text_emb, owner, ks=(1,))
    assert r.n == 4
    assert r.image_to_text["R@1"] == pytest.approx(2 / 3)  # still over the 3 captioned images
    assert r.text_to_image["R@1"] == pytest.approx(0.5)


def test_a_model_that_scores_everything_alike_ranks_last():
    r = retrieval_from_embeddings(np.ones((3, 2)), np.ones((3, 2)), np.arange(3), ks=(1,))
    assert r.image_to_text["R@1"] == 0.0 and r.text_to_image["R@1"] == 0.0


def _caption_dataset(tmp_path):
    return _colour_dataset(
        tmp_path,
        [
            ("r", "red", None, ["a red square"]),
            ("g", "green", None, ["green tissue", "a green patch"]),
            ("b", "blue", None, ["blue stain"]),
            ("y", "yellow", None, ["yellow fluid"]),
        ],
        class_names=[],
    )


def test_evaluate_retrieval_on_files(tmp_path):
    ds = _caption_dataset(tmp_path)
    model = FakeModel()
    r = evaluate_retrieval(model, ds, cache=EmbeddingCache())
    assert (r.n, r.n_texts) == (4, 5)
    assert r.image_to_text["R@1"] == 1.0 and r.text_to_image["R@1"] == 1.0
    assert r.median_rank == {"image_to_text": 1.0, "text_to_image": 1.0}


def test_evaluate_retrieval_needs_captions(tmp_path):
    ds = _colour_dataset(tmp_path, [("r", "red", 0, []), ("g", "green", 1, [])])
    with pytest.raises(DataError, match="captions"):
        evaluate_retrieval(FakeModel(), ds)


# --- search -------------------------------------------------------------------------------------


def test_search_text_finds_the_matching_image_first(tmp_path):
    ds = _caption_dataset(tmp_path)
    hits = search_text(FakeModel(), ds, "something blue", top=2, cache=EmbeddingCache())
    assert len(hits) == 2
    assert hits[0].path == str(tmp_path / "imgs" / "b.png")
    assert hits[0].captions == ["blue stain"]
    assert hits[0].score > hits[1].score


def test_search_image_finds_similar_images_and_captions(tmp_path):
    ds = _caption_dataset(tmp_path)
    query = write_png(tmp_path / "query.png", (10, 240, 10))
    images, captions = search_image(FakeModel(), ds, query, top=3, cache=EmbeddingCache())
    assert images[0].path == str(tmp_path / "imgs" / "g.png")
    assert len(images) == 3
    assert {h.captions[0] for h in captions[:2]} == {"green tissue", "a green patch"}
    assert all(h.path == str(tmp_path / "imgs" / "g.png") for h in captions[:2])
    json.dumps([h.to_dict() for h in images + captions])


def test_search_image_with_an_unreadable_query_is_an_image_error(tmp_path):
    ds = _caption_dataset(tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    with pytest.raises(ImageError, match="bad.png"):
        search_image(FakeModel(), ds, bad)


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
