"""The classification head an export carries: class names and one embedding row per class."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, trained_head
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.prompts import PromptSet


@dataclass(frozen=True)
class ClassHead:
    """(C, D) L2-normalised class rows: the prompt ensemble's text embeddings, or a linear probe's weights."""

    class_names: list[str]
    embeddings: np.ndarray
    source: str  # "prompts" | "linear_probe"
    texts: dict[str, list[str]] = field(default_factory=dict)  # the prompts behind each row ("prompts" only)

    def texts_flat(self) -> list[str]:
        return [text for name in self.class_names for text in self.texts.get(name, [])]

    def to_json(self) -> dict:
        out = {"class_names": list(self.class_names), "class_embeddings_from": self.source}
        if self.texts:
            out["class_texts"] = {name: list(self.texts[name]) for name in self.class_names}
        return out


def class_head(model: ImageTextModel, class_names: list[str], prompts: PromptSet) -> ClassHead:
    """The rows CLIP Studio classifies with: the model's trained head if it has one, else ``prompts``' ensemble."""
    rows = trained_head(model, class_names)
    if rows is not None:
        return ClassHead(list(class_names), rows, "linear_probe")
    texts = {name: prompts.texts_for(name) for name in class_names}
    return ClassHead(list(class_names), class_text_embeddings(model, class_names, prompts), "prompts", texts)
