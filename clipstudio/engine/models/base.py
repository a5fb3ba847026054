"""The one interface every image-text model in CLIP Studio implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from clipstudio.engine.models.fingerprint import SharedImageEncoder
    from clipstudio.engine.models.image_preprocessing import ImageInputSpec, ImagePreprocessing


class ImageTextModel(ABC):
    """A CLIP-style dual encoder.

    ``encode_images`` / ``encode_texts`` return L2-normalised ``(N, D)`` float tensors on CPU.
    ``preprocess`` turns decoded RGB PIL images into the pixel batch ``encode_images`` takes, so
    callers can decode/resize once (and cache) and encode many times.
    """

    kind: str  # "builtin" | "hf_clip" | "dual_encoder"
    # Set when a run's model is loaded and training left its image encoder as it was (see image_fingerprint).
    shared_image_encoder: SharedImageEncoder | None = None
    # Learning rates by training method that measured better for this model than the method's default
    # (config.DEFAULT_LEARNING_RATES); a run that sets no rate uses them (TrainConfig.resolved_learning_rate).
    recommended_learning_rates: Mapping[str, float] = MappingProxyType({})

    @property
    @abstractmethod
    def embed_dim(self) -> int: ...

    @property
    @abstractmethod
    def logit_scale(self) -> float:
        """exp(learned temperature): multiplies cosine similarities into logits."""

    @property
    @abstractmethod
    def max_text_tokens(self) -> int:
        """Longest text (in tokens, with specials) the text encoder sees; longer texts are truncated."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def to(self, device: str | torch.device) -> ImageTextModel: ...

    @abstractmethod
    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB PIL images -> float pixel batch (N, 3, H, W), normalised for this model."""

    @abstractmethod
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> torch.Tensor: ...

    @abstractmethod
    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts (with specials, before truncation), for the health report."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable hex digest of the weights and preprocessing; keys the embedding cache."""

    def image_fingerprint(self) -> str:
        """Keys image embeddings: ``fingerprint()``, or the starting model's key when this model is a run's
        whose image encoder is verifiably its starting model's (``fingerprint.adopt_image_embeddings``)."""
        shared = self.shared_image_encoder
        if shared is not None and shared.holds_for(self):
            return shared.fingerprint
        return self.fingerprint()

    @abstractmethod
    def save(self, folder: str | Path) -> Path:
        """Write the model (safetensors + JSON) so ``clipstudio.engine.models.load_model(folder)`` reloads it."""

    def image_input_spec(self) -> ImageInputSpec:
        """Square input size and mean/std of ``preprocess``, to normalise cached uint8 crops without PIL."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its image input")

    def image_preprocessing(self) -> ImagePreprocessing | None:
        """``preprocess`` as settings: a per-image uint8 crop plus a per-batch normalisation, or None where the
        model's preprocessing is not of that plain shape. Training crops its cached pixels with it, so a model
        trains on the pixels it is evaluated on."""
        return None

    # --- Training hooks (non-abstract so existing implementations keep working) -----------------
    # ``encode_*`` run under inference_mode and return CPU tensors; training needs differentiable
    # features on the model's device. These expose exactly that, and nothing more.

    @property
    def torch_module(self) -> torch.nn.Module:
        """The ``nn.Module`` holding every trainable weight (image tower, text tower, projections, temperature)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained")

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> padded, truncated token tensors on ``self.device`` for ``forward_texts``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained")

    def forward_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Differentiable L2-normalised image embeddings on ``self.device`` (respects train/eval mode)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained")

    def forward_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Differentiable L2-normalised text embeddings on ``self.device`` from ``tokenize`` output."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained")

    # The image tower as trunk + linear projection: ``forward_images(x)`` equals
    # ``forward_images_from_trunk(forward_image_trunk(x))``. Training keeps the trunk's outputs when
    # nothing in the trunk trains and the images are not augmented (``training.trunk_cache``).
    splits_image_tower: bool = False

    def forward_image_trunk(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower's output before its projection (``splits_image_tower`` models)."""
        raise NotImplementedError(f"{type(self).__name__} does not split its image tower")

    def forward_images_from_trunk(self, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings from ``forward_image_trunk`` output (the projection only)."""
        raise NotImplementedError(f"{type(self).__name__} does not split its image tower")

    def logit_scale_tensor(self) -> torch.Tensor:
        """exp(learned temperature) as a differentiable tensor, clamped at 100 like CLIP."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained")
