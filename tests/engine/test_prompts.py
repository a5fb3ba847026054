from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.embeddings import TextEmbeddingCache
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.prompts import (
    DEFAULT_TEMPLATES,
    PromptSet,
    class_text_embeddings,
    compare_prompt_sets,
    display_name,
    format_prompt,
    load_class_texts,
    save_class_texts,
)
from tests.engine.fake_model import FakeModel, text_vector


def test_display_name_turns_underscores_into_spaces():
    assert display_name("normal_or_benign") == "normal or benign"
    assert display_name("  pleural__effusion ") == "pleural effusion"
    assert display_name("covid-19") == "covid-19"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{class_name}", "pneumonia"),
        ("{class_name} on a chest x-ray", "pneumonia on a chest x-ray"),
        ("a chest x-ray showing {class_name}.", "a chest x-ray showing pneumonia."),
        ("{class_name} or not {class_name}?", "pneumonia or not pneumonia?"),
    ],
)
def test_format_prompt_fills_every_placement(template, expected):
    assert format_prompt(template, "pneumonia") == expected


def test_format_prompt_keeps_other_braces_literally():
    assert format_prompt("{0} {x} {{class_name}} {class_name}", "a") == "{0} {x} {a} a"
    assert format_prompt("a photo of {class_name}.", "grade {2}") == "a photo of grade {2}."
    assert format_prompt("a photo of {class_name}.", "{class_name}") == "a photo of {class_name}."


def test_format_prompt_handles_unicode():
    assert format_prompt("{class_name}的胸片", "肺炎") == "肺炎的胸片"
    assert format_prompt("一张{class_name}的图像", "正常") == "一张正常的图像"


def test_template_without_placeholder_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="a photo of a lung"):
        format_prompt("a photo of a lung", "pneumonia")
    with pytest.raises(ConfigError, match="a photo of a lung"):
        PromptSet(name="bad", templates=["a photo of {class_name}", "a photo of a lung"])


def test_default_templates_all_have_the_placeholder():
    assert DEFAULT_TEMPLATES
    assert all("{class_name}" in t for t in DEFAULT_TEMPLATES)
    assert PromptSet().templates == DEFAULT_TEMPLATES
    PromptSet().templates.append("x {class_name}")
    assert PromptSet().templates == DEFAULT_TEMPLATES  # no shared mutable default


def test_class_texts_override_templates_for_their_class_only():
    prompts = PromptSet(templates=["a photo of {class_name}."], class_texts={"malignant": ["irregular mass"]})
    assert prompts.texts_for("malignant") == ["irregular mass"]
    assert prompts.texts_for("normal_or_benign") == ["a photo of normal or benign."]


def test_prompt_set_without_templates_needs_class_texts():
    prompts = PromptSet(name="custom", templates=[], class_texts={"a": ["text a"]})
    assert prompts.texts_for("a") == ["text a"]
    with pytest.raises(ConfigError, match="'b'"):
        prompts.texts_for("b")


def test_load_class_texts_accepts_strings_and_lists(tmp_path):
    path = tmp_path / "class_texts.json"
    path.write_text(
        json.dumps(
            {"normal": "clear lungs", "pneumonia": ["patchy opacity", "consolidation"], "肺炎": "肺部阴影"}
        ),
        encoding="utf-8",
    )
    assert load_class_texts(path) == {
        "normal": ["clear lungs"],
        "pneumonia": ["patchy opacity", "consolidation"],
        "肺炎": ["肺部阴影"],
    }


def test_save_class_texts_round_trips(tmp_path):
    texts = {"normal": ["clear lungs"], "pneumonia": ["patchy opacity", "{odd} braces"]}
    path = tmp_path / "sub" / "class_texts.json"
    save_class_texts(path, texts)
    assert load_class_texts(path) == texts
    assert [p.name for p in path.parent.iterdir()] == ["class_texts.json"]  # no temp files left


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected an object"),
        ('{"pneumonia": 3}', "'pneumonia'"),
        ('{"pneumonia": []}', "'pneumonia'"),
        ('{"normal": "ok", "pneumonia": ["fine", 7]}', "'pneumonia'"),
        ('{"pneumonia": ["  "]}', "'pneumonia'"),
    ],
)
def test_bad_class_texts_file_is_one_config_error_naming_file_and_key(tmp_path, content, needle):
    path = tmp_path / "class_texts.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_class_texts(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_missing_class_texts_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="missing.json"):
        load_class_texts(tmp_path / "missing.json")


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


def test_compare_prompt_sets_scores_each_set_and_encodes_only_texts():
    model = FakeModel()
    classes = ["red", "green", "blue"]
    # Two images per class; one green image is actually cyan-ish, still nearest to green.
    image_emb = np.array(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 0.1, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 0],
            [0, 1, 0.4, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0.1, 0, 1, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    labels = np.array([0, 0, 1, 1, 2, 2])
    good = PromptSet(name="templates")
    shuffled = PromptSet(name="shuffled", class_texts={"red": ["green"], "green": ["blue"], "blue": ["red"]})
    rows = compare_prompt_sets(image_emb, labels, classes, model, [good, shuffled])

    assert [r["name"] for r in rows] == ["templates", "shuffled"]
    assert rows[0]["accuracy"] == 1.0 and rows[0]["balanced_accuracy"] == 1.0
    assert rows[1]["accuracy"] == 0.0
    assert rows[0]["per_class_recall"] == {"red": 1.0, "green": 1.0, "blue": 1.0}
    assert model.image_calls == 0
    assert len(model.texts_encoded) == 3 * len(DEFAULT_TEMPLATES) + 3
    json.dumps(rows)


def test_compare_prompt_sets_reports_no_recall_for_a_class_without_images():
    model = FakeModel()
    image_emb = np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]], dtype=np.float32)
    rows = compare_prompt_sets(image_emb, np.array([0, 1]), ["red", "green", "blue"], model, [PromptSet()])
    assert rows[0]["per_class_recall"] == {"red": 1.0, "green": 1.0, "blue": None}
    assert rows[0]["balanced_accuracy"] == 1.0


def test_rescoring_after_an_edit_encodes_only_the_edited_texts_and_scores_as_without_a_cache():
    model = FakeModel()
    classes = ["red", "green", "blue"]
    image_emb = np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0.3, 1, 0, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 2])
    cache = TextEmbeddingCache()
    first = PromptSet(name="first", templates=["a photo of {class_name}.", "{class_name} cells"])
    edited = PromptSet(name="edited", templates=["a photo of {class_name}.", "{class_name} stain"])
    compare_prompt_sets(image_emb, labels, classes, model, [first], text_cache=cache)

    before = len(model.texts_encoded)
    rows = compare_prompt_sets(image_emb, labels, classes, model, [edited], text_cache=cache)
    assert model.texts_encoded[before:] == ["red stain", "green stain", "blue stain"]
    assert rows == compare_prompt_sets(image_emb, labels, classes, FakeModel(), [edited])
    np.testing.assert_allclose(
        class_text_embeddings(model, classes, edited, text_cache=cache),
        class_text_embeddings(FakeModel(), classes, edited),
        atol=1e-6,
    )
