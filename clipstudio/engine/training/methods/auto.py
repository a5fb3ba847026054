"""Method "auto": the training method for the data at hand, picked from how many training images each class has.

The rule follows what docs/ADAPTATION.md measured with the built-in model on MedMNIST (its "Auto"
section has the table), full fine-tuning at the built-in model's default rate (1e-4):

- Few images per class (the K-shot curves, 1 to 16 per class): the linear probe is the best method
  at every K, or within 0.013 of the best (Tip-Adapter-F, at one K per dataset). It takes seconds.
  Full fine-tuning was not measured there.
- 50, 54.5, 86, 218.5 and 240 per class (the OrganAMNIST, BloodMNIST, RetinaMNIST, BreastMNIST and
  PneumoniaMNIST subsets): full fine-tuning is ahead of the probe by 0.074, 0.018, 0.031, 0.011 and
  0.050 balanced accuracy. At the earlier
  default rate (1e-5) it was behind on the first two (by 0.10 and 0.03), which had put the threshold
  at 70.
- Image-text pairs: the probe and Tip-Adapter need class labels; full fine-tuning is the method
  measured on pairs.

"Images per class" is the median over the classes of the training images (after few-shot
sampling): the typical class, which one rare class does not drag down.
"""

from __future__ import annotations

import copy
import statistics
from collections import Counter
from collections.abc import Sequence

from clipstudio.engine.config import AUTO_METHOD, TrainConfig
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.events import Callback, MethodChosen

# A typical class with fewer training images than this gets the linear probe; with this many or more,
# full fine-tuning: the smallest class size where full fine-tuning was measured ahead (OrganAMNIST, 50).
# Between 16 and 50 nothing is measured yet; there the probe, which takes seconds, stays.
FULL_FINE_TUNE_FROM = 50


def choose_method(class_counts: Sequence[int] | None) -> MethodChosen:
    """The method for training images with these per-class counts; None: no class labels (image-text pairs)."""
    if class_counts is None:
        return MethodChosen(
            "full",
            "Auto picked full fine-tuning: the images have captions but no class labels, and the linear probe "
            "and Tip-Adapter need class labels.",
        )
    typical = statistics.median(class_counts)
    shown = f"{typical:g}"
    if typical < FULL_FINE_TUNE_FROM:
        return MethodChosen(
            "linear_probe",
            f"Auto picked the linear probe: a typical class has {shown} training images (fewer than "
            f"{FULL_FINE_TUNE_FROM}). With so few, a classifier on the model's image features was the most "
            "accurate method measured, and it trains in seconds.",
        )
    return MethodChosen(
        "full",
        f"Auto picked full fine-tuning: a typical class has {shown} training images ({FULL_FINE_TUNE_FROM} or "
        "more), enough to adapt the whole model, which then did a little better than the linear probe in our "
        "measurements. On a CPU it takes minutes to hours; the linear probe takes seconds.",
    )


def resolve_auto_method(
    cfg: TrainConfig, dataset: Dataset, train_indices: Sequence[int], callback: Callback
) -> TrainConfig:
    """``cfg`` with method "auto" replaced by the method picked for these training images (reported to
    ``callback`` as MethodChosen); any other method unchanged. The run folder then records the picked method."""
    if cfg.method != AUTO_METHOD:
        return cfg
    counts = None
    if dataset.is_classification:
        per_class = Counter(dataset.samples[i].label for i in train_indices)
        counts = [per_class.get(label, 0) for label in range(len(dataset.class_names))]
    chosen = choose_method(counts)
    callback(chosen)
    resolved = copy.deepcopy(cfg)
    resolved.method = chosen.method
    return resolved


__all__ = ["FULL_FINE_TUNE_FROM", "choose_method", "resolve_auto_method"]
