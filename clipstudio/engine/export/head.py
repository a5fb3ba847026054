"""The classification head an export carries: class names, one row per class, a scale and a bias."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipstudio.engine.class_weights import ClassWeights
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, trained_head
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.prompts import PromptSet


@dataclass(frozen=True)
class ClassHead:
    """The prompt ensemble's cosine head (unit text embeddings, the model's logit scale) or a linear probe's."""

    class_names: list[str]
    weights: ClassWeights
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
    trained = trained_head(model, class_names)
    if trained is not None:
        return ClassHead(list(class_names), trained, "linear_probe")
    texts = {name: prompts.texts_for(name) for name in class_names}
    rows = class_text_embeddings(model, class_names, prompts)
    return ClassHead(list(class_names), ClassWeights(rows, float(model.logit_scale)), "prompts", texts)
