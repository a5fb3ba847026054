from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation import retrieval
from clipstudio.engine.evaluation.retrieval import evaluate_retrieval, retrieval_from_embeddings
from tests.engine.fake_model import COLOURS, FakeModel, write_png

E = np.eye(3, dtype=np.float32)


def _colour_dataset(tmp_path, items, class_names=("red", "green", "blue")):
    """items: (file stem, colour, label, captions)."""
    samples = [
        Sample(path=write_png(tmp_path / "imgs" / f"{stem}.png", COLOURS[colour]), label=label, captions=caps)
        for stem, colour, label, caps in items
    ]
    return Dataset(root=tmp_path, format="test", samples=samples, class_names=list(class_names))


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
    monkeypatch.setattr(retrieval, "_CHUNK_CELLS", 4)  # one image row per chunk
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


