"""A frozen model with a trained classifier on top: encoding is the frozen model's, classifying is not.

The linear probe's ``LinearProbeModel`` and Tip-Adapter's ``TipAdapterModel`` share this: every
encoder call goes to ``base``; a subclass adds its classifier and how it is saved.
"""

from __future__ import annotations

import torch

from clipstudio.engine.models.base import ImageTextModel


class FrozenBaseModel(ImageTextModel):
    """``base``'s encoders, untouched; subclasses add the classifier trained on its image embeddings."""

    def __init__(self, base: ImageTextModel, class_names: list[str]) -> None:
        self.base = base
        self.class_names = list(class_names)

    def class_rows(self, class_names: list[str]) -> list[int] | None:
        """Where each of ``class_names`` sits in the trained classifier, in that order; None if one was not trained."""
        index = {name: i for i, name in enumerate(self.class_names)}
        if any(name not in index for name in class_names):
            return None
        return [index[name] for name in class_names]

    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def logit_scale(self) -> float:
        return self.base.logit_scale

    @property
    def max_text_tokens(self) -> int:
        return self.base.max_text_tokens

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, device) -> FrozenBaseModel:
        self.base.to(device)
        return self

    def preprocess(self, images):
        return self.base.preprocess(images)

    def encode_images(self, pixel_values):
        return self.base.encode_images(pixel_values)

    def encode_texts(self, texts):
        return self.base.encode_texts(texts)

    def count_tokens(self, texts):
        return self.base.count_tokens(texts)

    def fingerprint(self) -> str:
        return self.base.fingerprint()  # image and text embeddings are the frozen model's

    def image_fingerprint(self) -> str:
        return self.base.image_fingerprint()

    def image_input_spec(self):
        return self.base.image_input_spec()

    def image_preprocessing(self):
        return self.base.image_preprocessing()
