"""Calibration: does "90% sure" come true 90% of the time, and temperature scaling to make it so.

The expected calibration error (ECE) compares, in bins of images with similar confidence, the mean
confidence (the top class's probability) with the share predicted right, weighted by bin size. The
bins hold equal numbers of images (edges at confidence quantiles, as scikit-learn's
``calibration_curve(strategy="quantile")``), so no bin rests on a handful of images. Temperature
scaling divides every logit by one number T, fitted on validation to minimise the negative
log-likelihood; it never changes which class is predicted, only how sure the model says it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CalibrationResult",
    "apply_temperature",
    "brier_score",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "log_loss",
    "negative_log_likelihood",
    "reliability_bins",
    "softmax",
]

N_BINS = 10
_LOG_T_RANGE = (np.log(0.01), np.log(100.0))  # temperatures searched
_GOLDEN = (np.sqrt(5.0) - 1) / 2


@dataclass(frozen=True)
class CalibrationResult:
    """Calibration on test images before and (when validation was given) after temperature scaling.

    The ``*_after`` fields and ``temperature`` are None, with ``reason``, when nothing was fitted.
    ``reliability*``: one dict per non-empty bin, ``confidence`` (mean), ``accuracy`` and ``count``.
    """

    n: int
    n_bins: int
    ece: float | None
    brier: float | None
    log_loss: float | None
    reliability: list[dict]
    temperature: float | None = None
    n_validation: int = 0
    ece_after: float | None = None
    brier_after: float | None = None
    log_loss_after: float | None = None
    reliability_after: list[dict] | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        out: dict = {
            "n": self.n,
            "ece": self.ece,
            "ece_after": self.ece_after,
            "temperature": self.temperature,
            "fitted_on": {"split": "validation", "n": self.n_validation} if self.temperature is not None else None,
            "n_bins": self.n_bins,
            "brier": self.brier,
            "brier_after": self.brier_after,
            "log_loss": self.log_loss,
            "log_loss_after": self.log_loss_after,
            "reliability": [dict(b) for b in self.reliability],
            "reliability_after": None if self.reliability_after is None else [dict(b) for b in self.reliability_after],
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities: ``softmax(logits / temperature)``."""
    return softmax(logits, temperature)


def negative_log_likelihood(labels: np.ndarray, logits: np.ndarray, temperature: float = 1.0) -> float:
    """Mean -log p(true class) of ``softmax(logits / temperature)``, computed stably from the logits."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log p(true class) of probabilities, clipped at float64 eps (scikit-learn's ``log_loss``)."""
    probs = np.asarray(probs, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    p_true = probs[np.arange(len(probs)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps))))


def brier_score(labels: np.ndarray, probs: np.ndarray, *, positive: int = 1) -> float:
    """Mean squared error of the probabilities: binary, of the positive class's; else summed over classes.

    The two forms are scikit-learn's ``brier_score_loss`` with ``scale_by_half="auto"``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.shape[1] == 2:
        return float(np.mean((probs[:, positive] - (labels == positive)) ** 2))
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Per non-empty equal-mass bin: mean ``confidence``, ``accuracy`` (share right) and ``count``."""
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if not confidence.size:
        return []
    edges = np.percentile(confidence, np.linspace(0, 100, n_bins + 1))
    bin_of = np.searchsorted(edges[1:-1], confidence)
    count = np.bincount(bin_of, minlength=n_bins)
    conf_sum = np.bincount(bin_of, weights=confidence, minlength=n_bins)
    right = np.bincount(bin_of, weights=correct, minlength=n_bins)
    return [
        {"confidence": float(conf_sum[b] / count[b]), "accuracy": float(right[b] / count[b]), "count": int(count[b])}
        for b in np.flatnonzero(count)
    ]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float | None:
    """Size-weighted mean gap |accuracy - confidence| over equal-mass bins; None without images."""
    bins = reliability_bins(confidence, correct, n_bins)
    if not bins:
        return None
    n = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / n)


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """The temperature T in [0.01, 100] that minimises the NLL of ``softmax(logits / T)``.

    The NLL is convex in 1/T, so it has one minimum along log T: a golden-section search finds it
    without derivatives or a starting guess. A boundary value means the data pushed past the range
    (e.g. validation predictions all right and apart: ever sharper is ever better).
    """
    labels = np.asarray(labels, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    lo, hi = _LOG_T_RANGE

    def nll(log_t: float) -> float:
        return negative_log_likelihood(labels, logits, float(np.exp(log_t)))

    a, b = lo + (1 - _GOLDEN) * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-7:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - _GOLDEN) * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = nll(b)
    best = (lo + hi) / 2
    # The ends themselves are candidates: golden section only ever looks inside the bracket.
    candidates = [_LOG_T_RANGE[0], best, _LOG_T_RANGE[1]]
    return float(np.exp(min(candidates, key=nll)))


def calibration_report(
    test_labels: np.ndarray,
    test_logits: np.ndarray,
    *,
    val_labels: np.ndarray | None = None,
    val_logits: np.ndarray | None = None,
    n_bins: int = N_BINS,
) -> CalibrationResult:
    """ECE, Brier score, log-loss and reliability bins on test; temperature fitted on validation only.

    Without validation images nothing is fitted (fitting on test would flatter the result).
    """
    test_labels = np.asarray(test_labels, dtype=np.int64).reshape(-1)
    test_logits = np.asarray(test_logits, dtype=np.float64)
    n = len(test_labels)
    before = _scores(test_labels, softmax(test_logits) if n else test_logits, n_bins)
    if val_labels is None or val_logits is None or not len(val_labels):
        return CalibrationResult(
            n, n_bins, *before,
            reason="no validation images: temperature scaling is fitted on validation only, never on test",
        )
    if not n:
        return CalibrationResult(n, n_bins, *before, reason="no test images")
    temperature = fit_temperature(val_labels, val_logits)
    ece, brier, loss, bins = _scores(test_labels, softmax(test_logits, temperature), n_bins)
    return CalibrationResult(
        n, n_bins, *before,
        temperature=temperature,
        n_validation=len(val_labels),
        ece_after=ece,
        brier_after=brier,
        log_loss_after=loss,
        reliability_after=bins,
    )


def _scores(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> tuple:
    """ECE, Brier, log-loss and reliability bins of probabilities (all None/empty without images)."""
    if not len(labels):
        return None, None, None, []
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    return (
        expected_calibration_error(confidence, correct, n_bins),
        brier_score(labels, probs),
        log_loss(labels, probs),
        reliability_bins(confidence, correct, n_bins),
    )
