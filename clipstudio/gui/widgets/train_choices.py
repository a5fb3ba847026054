"""The training form's choices: each method with its plain explanation, and the options of its drop-downs."""

from __future__ import annotations

from clipstudio.engine.config import AUTO_METHOD
from clipstudio.engine.training.methods.auto import FULL_FINE_TUNE_FROM

METHODS = {  # method -> (label, one-line explanation)
    AUTO_METHOD: (
        "Auto (picks for your data)",
        "Picks the method when training starts, from how many training images each class has: the linear "
        f"probe when a typical class has fewer than {FULL_FINE_TUNE_FROM}, full fine-tuning when it has more "
        "(minutes to hours on a CPU). The log says which it picked and why.",
    ),
    "full": ("Full fine-tune", "Both towers learn. Most flexible; needs the most images and memory."),
    "lock_image": ("Lock image tower (LiT)", "The image encoder stays frozen; only the text side learns."),
    "lock_text": ("Lock text tower", "The text encoder stays frozen; only the image side learns."),
    "linear_probe": (
        "Linear probe",
        "Encoders frozen; fits a class head on their image embeddings (logistic regression), each epoch "
        "a weaker penalty, the best chosen on validation. Seconds.",
    ),
    "lora": ("LoRA adapters", "Small low-rank adapters on the attention layers; good for small datasets."),
    "tip_adapter": (
        "Tip-Adapter (no training)",
        "Encoders frozen; each image is also compared with the training images, and how much that counts "
        "is chosen on validation. Nothing trains: seconds, good with few images per class.",
    ),
    "tip_adapter_f": (
        "Tip-Adapter-F",
        "Tip-Adapter whose stored training images are tuned for a few epochs (the paper uses 20). "
        "Seconds to minutes; often better than Tip-Adapter.",
    ),
}
# Methods that never step an optimizer: their schedule settings do not apply.
SOLVED_METHODS = ("linear_probe", "tip_adapter")
AUGMENTATIONS = {
    "none": "None",
    "minimal": "Minimal (crop, flip)",
    "standard": "Standard (+ colour, rotation)",
}
LOSSES = {"multi_positive": "Multi-positive (same class = positive)", "clip": "Plain CLIP (diagonal only)"}
MONITORS = {"val_acc": "validation accuracy / recall", "val_loss": "validation loss"}
PROBE_PRIORS = {"auto": "automatic", "text": "the prompts", "none": "zero"}  # the tooltip and link explain each
LORA_TARGETS = {  # which layers get adapters -> label; "custom" only shows a config file's own list
    "attention": "attention q, k, v and output (default)",
    "qkv": "attention q, k, v only (CLIP-LoRA)",
}


__all__ = ["AUGMENTATIONS", "LORA_TARGETS", "LOSSES", "METHODS", "MONITORS", "PROBE_PRIORS", "SOLVED_METHODS"]
