from __future__ import annotations

import json

import pytest

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.prompt_store import (
    DatasetPrompts,
    load_dataset_prompts,
    prompts_file,
    save_dataset_prompts,
)
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.storage.paths import user_data_dir


def _prompts() -> DatasetPrompts:
    return DatasetPrompts(
        active=PromptSet(name="mine", templates=["a chest X-ray with {class_name}."],
                         class_texts={"pneumonia": ["cloudy lungs", "consolidation"]}),
        saved_sets=[PromptSet(name="short", templates=["{class_name}"])],
    )


def test_prompts_round_trip_through_a_readable_file_in_the_app_data_folder(tmp_path):
    dataset = tmp_path / "pneumoniamnist" / "folders"
    dataset.mkdir(parents=True)
    path = save_dataset_prompts(dataset, _prompts())
    assert path.parent == user_data_dir() / "prompts"
    assert path.name.startswith("pneumoniamnist-folders-")
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["dataset"] == str(dataset.resolve())
    assert raw["active"]["class_texts"] == {"pneumonia": ["cloudy lungs", "consolidation"]}
    assert load_dataset_prompts(dataset) == _prompts()


def test_the_same_folder_reached_another_way_finds_the_same_prompts(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    save_dataset_prompts(dataset, _prompts())
    assert load_dataset_prompts(tmp_path / "data" / ".." / "data") == _prompts()


def test_each_dataset_keeps_its_own_prompts(tmp_path):
    a, b = tmp_path / "a" / "folders", tmp_path / "b" / "folders"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    save_dataset_prompts(a, _prompts())
    assert prompts_file(a) != prompts_file(b)
    assert load_dataset_prompts(b) is None


@pytest.mark.parametrize("text", ["{not json", '{"schema_version": 1, "dataset": "%s", "active": {}}',
                                  '{"schema_version": 1, "dataset": "%s", "active": {"templates": ["no slot"]}}'])
def test_a_damaged_file_is_one_sentence_naming_it(tmp_path, text):
    dataset = tmp_path / "data"
    dataset.mkdir()
    path = prompts_file(dataset)
    path.parent.mkdir(parents=True)
    path.write_text(text.replace("%s", str(dataset.resolve())), encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path.name)):
        load_dataset_prompts(dataset)
