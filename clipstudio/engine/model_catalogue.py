"""Medical CLIP models users bring, as the Model screen lists them: what they were trained on, their
architecture, their licence as the model card states it, and the file that shows a local copy.

Plain data (no torch, no network): the app shows the list at once and checks the Hugging Face cache
in a worker (``engine.models.hub.cached_hub_file``). CONCH is not listed: it is gated and licensed
CC BY-NC-ND.
"""

from __future__ import annotations

from dataclasses import dataclass

HF_CLIP_CONFIG = "config.json"
OPEN_CLIP_CONFIG = "open_clip_config.json"
# What the Hugging Face cache lacks of a model never downloaded (engine.models.hub.missing_from_cache).
NOTHING_CACHED = "its configuration and weights"


@dataclass(frozen=True)
class KnownModel:
    repo_id: str
    name: str
    images: str  # what it was trained on, in a clinician's words
    architecture: str
    licence: str  # as the model card states it; "see the model card" where we could not confirm it
    note: str  # restrictions on use the model card states
    config_file: str  # the file whose presence in the HF cache means a local copy exists

    @property
    def open_clip(self) -> bool:
        return self.config_file == OPEN_CLIP_CONFIG


_RESEARCH = "Model card: for research; not for deployed (clinical) use."

KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", "BiomedCLIP",
               "PubMed Central figures: radiology, pathology, microscopy (15M pairs)",
               "ViT-B/16 + PubMedBERT", "MIT", _RESEARCH, OPEN_CLIP_CONFIG),
    KnownModel("vinid/plip", "PLIP", "Histopathology shared by pathologists",
               "ViT-B/32 CLIP", "see the model card", "Check the model card before use.", HF_CLIP_CONFIG),
    KnownModel("flaviagiammarino/pubmed-clip-vit-base-patch32", "PubMedCLIP",
               "Radiology (ROCO, PubMed Central)", "ViT-B/32 CLIP",
               "see the model card", "Check the model card before use.", HF_CLIP_CONFIG),
    KnownModel("wisdomik/QuiltNet-B-32", "QuiltNet-B-32", "Histopathology (Quilt-1M, educational videos)",
               "ViT-B/32 CLIP", "MIT", "Model card: a research output.", OPEN_CLIP_CONFIG),
    KnownModel("wisdomik/QuiltNet-B-16", "QuiltNet-B-16", "Histopathology (Quilt-1M, educational videos)",
               "ViT-B/16 CLIP", "MIT", "Model card: a research output.", OPEN_CLIP_CONFIG),
    KnownModel("wisdomik/QuiltNet-B-16-PMB", "QuiltNet-B-16-PMB",
               "Histopathology (Quilt-1M, educational videos)", "ViT-B/16 + PubMedBERT",
               "see the model card", "Model card: a research output.", OPEN_CLIP_CONFIG),
)

__all__ = ["HF_CLIP_CONFIG", "KNOWN_MODELS", "NOTHING_CACHED", "OPEN_CLIP_CONFIG", "KnownModel"]
