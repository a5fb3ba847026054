"""WiSE-FT: weight-space ensembles of the starting and the fine-tuned model.

``theta(alpha) = (1 - alpha) * theta_start + alpha * theta_finetuned`` over every floating-point
tensor of the two models' state dicts (integer buffers, e.g. position ids or BatchNorm counters,
come from the fine-tuned model). alpha 0 is the starting model, alpha 1 the fine-tuned one; in
between often keeps most of the fine-tuning gain while giving back some of the robustness the
pretrained weights had (Wortsman et al., 2022). Both models must share one architecture.

Linear-probe runs interpolate the class head instead: between the zero-shot class text
embeddings (the head's starting point) and the trained head; the encoders are frozen anyway.
Tip-Adapter runs scale the cache's weight instead, from 0 (zero-shot) to the run's alpha.
"""

from __future__ import annotations

import numbers
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.class_weights import ClassWeights, mix_logits
from clipstudio.engine.config import EVAL_BATCH_SIZE, RECALL_KS
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ConfigError, DataError, ModelError
from clipstudio.engine.evaluation.evaluate import ZEROSHOT, evaluate_model, evaluation_kind, summary_metrics
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, own_classifier
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.models import load_model
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.models.tip_adapter_head import TipAdapterModel
from clipstudio.engine.prompts import PromptSet, run_prompt_set
from clipstudio.engine.runs.layout import is_run_folder, run_start_model_spec
from clipstudio.engine.runtime.device import select_device

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SELECTION_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))  # choosing on validation: a finer grid


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, or ConfigError when it is not a number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"WiSE alpha must be a number between 0 and 1 (got {alpha!r}).")
    return float(alpha)


def interpolate_state_dicts(
    start: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * finetuned`` for floating tensors; the rest from ``finetuned``.

    Raises ModelError when the two do not hold the same tensors (names and shapes).
    """
    alpha = check_alpha(alpha)
    _check_same_tensors(start, finetuned)
    out = {}
    for name, tuned in finetuned.items():
        base = start[name]
        if not tuned.is_floating_point():
            out[name] = tuned.clone()
            continue
        a = base.detach().to(tuned.device, torch.float32)
        b = tuned.detach().float()
        out[name] = torch.lerp(a, b, alpha).to(tuned.dtype)
    return out


def _check_same_tensors(start: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(finetuned) - set(start))
    extra = sorted(set(start) - set(finetuned))
    if missing or extra:
        names = ", ".join((missing or extra)[:3])
        raise ModelError(
            "WiSE-FT needs the starting and the fine-tuned model to share one architecture; "
            f"their weights differ ({'only fine-tuned' if missing else 'only starting'}: {names})."
        )
    for name, tuned in finetuned.items():
        if start[name].shape != tuned.shape:
            raise ModelError(
                "WiSE-FT needs the starting and the fine-tuned model to share one architecture; "
                f"{name} is {tuple(start[name].shape)} in one and {tuple(tuned.shape)} in the other."
            )


class WiseInterpolator:
    """A run's starting and fine-tuned model, loaded once, giving the model at any alpha.

    ``model_at(0)`` is the starting model itself and ``model_at(1)`` the fine-tuned weights
    unchanged, so both reuse their embedding cache entries. Other alphas overwrite the weights of
    one working model in place: a model returned earlier changes with the next call.
    """

    def __init__(self, run_dir: str | os.PathLike, *, device: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        if not is_run_folder(self.run_dir):
            raise ConfigError(
                f"{str(self.run_dir)!r} is not a training run folder (no run.json and config.json)."
            )
        self.device = select_device(device)
        self.finetuned = load_model(str(self.run_dir), device=str(self.device))  # best, else latest
        self.is_linear_probe = isinstance(self.finetuned, LinearProbeModel | TipAdapterModel)
        if self.is_linear_probe:
            self.start = self.finetuned.base  # the frozen encoders are the starting model's
            if isinstance(self.finetuned, LinearProbeModel):
                self._zero_shot_head = self._initial_head()
            return
        self.start = load_model(run_start_model_spec(self.run_dir), device=str(self.device))
        if type(self.start) is not type(self.finetuned):
            raise ModelError(
                f"WiSE-FT needs one architecture, but the run starts from a {self.start.kind} model "
                f"and its checkpoint is a {self.finetuned.kind} model."
            )
        try:
            start_state = self.start.torch_module.state_dict()
            tuned_state = self.finetuned.torch_module.state_dict()
        except NotImplementedError:
            raise ModelError(f"WiSE-FT can't interpolate {self.finetuned.kind} models.") from None
        # Fail now on a mismatch, not at the first alpha in (0, 1); shapes only, nothing is copied.
        _check_same_tensors(start_state, tuned_state)
        self._tuned_state: dict[str, torch.Tensor] | None = None  # copied before the first overwrite

    def evaluation_kind_of(self, dataset: Dataset) -> str:
        """How this run's models score ``dataset`` (ZEROSHOT or RETRIEVAL); DataError when they can't.

        A linear-probe (or Tip-Adapter) run scores its trained classifier: it needs class data with the classes
        it was trained on.
        """
        kind = evaluation_kind(dataset)
        if not self.is_linear_probe:
            return kind
        if kind != ZEROSHOT:
            raise DataError(
                f"A {self.finetuned.kind} run can only be evaluated on class data (class folders or labels)."
            )
        if own_classifier(self.finetuned, dataset.class_names) is None:
            raise DataError(
                f"{dataset.source or dataset.root}: its classes ({', '.join(dataset.class_names)}) are not "
                f"the run's ({', '.join(self.finetuned.class_names)}); its trained classifier only knows its own."
            )
        return kind

    def _initial_head(self) -> ClassWeights:
        names = self.finetuned.class_names
        rows = class_text_embeddings(self.start, names, run_prompt_set(self.run_dir))
        return ClassWeights(rows, float(self.start.logit_scale))

    def model_at(self, alpha: float) -> ImageTextModel:
        alpha = check_alpha(alpha)
        if alpha == 0.0:
            return self.start
        if self.is_linear_probe:
            tuned = self.finetuned
            if alpha == 1.0:
                return tuned
            if isinstance(tuned, TipAdapterModel):
                # The cache's weight goes from 0 (zero-shot) to the run's: the logits again move in a straight line.
                return tuned.with_alpha(alpha * tuned.cache.alpha)
            # The logits move in a straight line from zero-shot's to the probe's.
            head = mix_logits(self._zero_shot_head, tuned.head, alpha)
            return LinearProbeModel(self.start, head, tuned.class_names)
        module = self.finetuned.torch_module
        if self._tuned_state is None:
            if alpha == 1.0:
                return self.finetuned  # untouched so far: no copy needed
            self._tuned_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if alpha == 1.0:
            state = self._tuned_state
        else:
            state = interpolate_state_dicts(self.start.torch_module.state_dict(), self._tuned_state, alpha)
        with torch.no_grad():
            module.load_state_dict(state, strict=True)
        return self.finetuned


def wise_model(run_dir: str | os.PathLike, alpha: float, device: str = "auto") -> ImageTextModel:
    """The run's WiSE-FT model at ``alpha`` (0: the starting model, 1: the fine-tuned one)."""
    check_alpha(alpha)
    return WiseInterpolator(run_dir, device=device).model_at(alpha)


def wise_sweep(
    run_dir: str | os.PathLike,
    dataset: Dataset,
    prompts: PromptSet | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    ks: Sequence[int] = RECALL_KS,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "auto",
    models: WiseInterpolator | None = None,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> list[dict]:
    """Metrics of the WiSE-FT model at each alpha: one row per alpha, in the order given.

    Rows hold ``alpha``, ``n`` and ``accuracy``/``balanced_accuracy`` (class data) or
    ``i2t_R@K``/``t2i_R@K``/``mean_recall`` (pairs). ``prompts`` default to the run's own.
    Without a ``cache`` a temporary one lives for the sweep, so models whose image encoder is
    unchanged (alpha 0 and the starting model, every alpha of a linear probe) encode the images once.
    ``models``: the run's models already loaded (else they are loaded on ``device``).
    Stops early (fewer rows) when ``should_stop`` says so.
    """
    alphas = [check_alpha(a) for a in alphas]
    if not alphas:
        raise ConfigError("A WiSE-FT sweep needs at least one alpha.")
    prompts = prompts if prompts is not None else run_prompt_set(run_dir)
    interpolator = models if models is not None else WiseInterpolator(run_dir, device=device)
    kind = interpolator.evaluation_kind_of(dataset)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipstudio-wise-") as tmp:
        cache = cache if cache is not None else EmbeddingCache(Path(tmp))
        for alpha in alphas:
            if should_stop():
                break
            result = evaluate_model(
                interpolator.model_at(alpha),
                dataset,
                prompts,
                kind=kind,
                ks=ks,
                cache=cache,
                batch_size=batch_size,
                callback=callback,
                should_stop=should_stop,
            )
            if result.cancelled:
                break
            rows.append({"alpha": alpha, **summary_metrics(result)})
    return rows


@dataclass
class WiseChoice:
    """The WiSE-FT alpha chosen on validation images, and the sweep it was chosen from."""

    alpha: float
    metric: str  # what was maximised: balanced_accuracy (class data) or mean_recall (pairs)
    value: float  # its value at ``alpha`` on the validation images
    validation: str  # which images: the validation part's description
    n: int
    sweep: list[dict]  # wise_sweep's rows, one per alpha

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "metric": self.metric, "value": self.value, "validation": self.validation,
                "n": self.n, "sweep": self.sweep}


def choose_alpha(
    run_dir: str | os.PathLike,
    validation: Dataset,
    description: str,
    *,
    alphas: Sequence[float] = SELECTION_ALPHAS,
    **sweep,
) -> WiseChoice | None:
    """The alpha whose WiSE-FT model scores best on ``validation`` (balanced accuracy for class data, mean
    recall for pairs); None when cancelled. A tie goes to the larger alpha, nearer the fine-tuned model
    that was selected on these images already. Never pass the images the result will be reported on.
    ``sweep``: ``wise_sweep``'s keyword arguments (cache, batch_size, device, models, callback, should_stop)."""
    rows = wise_sweep(run_dir, validation, alphas=alphas, **sweep)
    if len(rows) < len(alphas):
        return None
    metric = "balanced_accuracy" if "balanced_accuracy" in rows[0] else "mean_recall"
    scored = [row for row in rows if row.get(metric) is not None]
    if not scored:
        raise DataError(f"The validation images ({description}) give no {metric.replace('_', ' ')} to choose on.")
    best = max(scored, key=lambda row: (row[metric], row["alpha"]))
    return WiseChoice(alpha=best["alpha"], metric=metric, value=best[metric], validation=description,
                      n=len(validation), sweep=rows)


__all__ = [
    "DEFAULT_ALPHAS",
    "SELECTION_ALPHAS",
    "WiseChoice",
    "WiseInterpolator",
    "check_alpha",
    "choose_alpha",
    "interpolate_state_dicts",
    "wise_model",
    "wise_sweep",
]
