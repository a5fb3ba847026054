from __future__ import annotations

import json

import pytest

from clipstudio.engine.config import PromptConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.prompts import (
    DEFAULT_TEMPLATES,
    PromptSet,
    display_name,
    format_prompt,
    load_class_texts,
    prompt_set_from_config,
    save_class_texts,
)


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


def test_a_prompt_config_names_its_templates_or_the_defaults_and_reads_its_class_texts(tmp_path):
    assert prompt_set_from_config(PromptConfig()).templates == DEFAULT_TEMPLATES
    path = tmp_path / "texts.json"
    path.write_text('{"red": "a red cell"}', encoding="utf-8")
    prompts = prompt_set_from_config(PromptConfig(templates=["{class_name} seen"], class_texts=str(path)), name="cli")
    assert prompts.name == "cli"
    assert prompts.texts_for("red") == ["a red cell"]
    assert prompts.texts_for("blue_cells") == ["blue cells seen"]
