"""The label-mistake folds' solver: L-BFGS on the linear probe's objective, without ``torch.optim``.

The objective is the probe's (``probe_objective``: mean cross-entropy + L2 pull of the weights
towards zero); only the minimiser differs from ``solve_probe``. Building any ``torch.optim``
optimizer imports ``torch._dynamo`` (with sympy, ~840 modules) on its first use in a process:
1.8-5 s with the files in the disk cache, 2-3 s more without, measured on this machine. The first
Analyse of a session paid it, and it was most of the 10,000-image ranking's time (the solves
themselves take 2-5 s there). Nothing else the Explore screen runs touches ``torch.optim``.

Plain L-BFGS (Nocedal & Wright, algorithm 7.4) with an Armijo backtracking line search, which
suffices for this smooth, strictly convex objective; the same stopping rules as the probe's solver
(largest gradient entry at most ``TOLERANCE``, at most ``MAX_ITERATIONS``).
"""

from __future__ import annotations

import torch

from clipstudio.engine.events import ShouldStop, never_stop
from clipstudio.engine.training.methods.linear_probe import probe_objective

MAX_ITERATIONS = 500
TOLERANCE = 1e-5  # largest gradient entry of the mean loss at a solution (as the probe's solver)
HISTORY = 20  # curvature pairs kept (as the probe's solver)
_STOP_EVERY = 25  # iterations between checks of Stop
_ARMIJO = 1e-4  # sufficient decrease: f(w + t d) <= f(w) + _ARMIJO t g.d
_SMALLEST_STEP = 1e-10
# Below this many multiply-adds per loss the fit runs on one thread: the probe's solver measured
# OpenMP threads meeting at a barrier every millisecond 20x slower than one thread on a busy CPU.
_ONE_THREAD_BELOW = 50_000_000


def minimise_probe(
    weight: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    strength: float,
    should_stop: ShouldStop = never_stop,
) -> bool:
    """Minimise ``probe_objective`` (prior zero) over ``weight`` (C, D) and ``bias`` (C,) in place,
    starting from their values; False when stopped."""
    n_classes, dim = weight.shape
    prior = torch.zeros_like(weight)

    def loss_and_grad(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        theta = theta.detach().requires_grad_(True)
        loss = probe_objective(theta[: n_classes * dim].view(n_classes, dim), theta[n_classes * dim:], x, y,
                               prior, strength)
        (grad,) = torch.autograd.grad(loss, theta)
        return float(loss.detach()), grad

    threads = torch.get_num_threads()
    if x.shape[0] * x.shape[1] * n_classes < _ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        theta = torch.cat([weight.detach().reshape(-1), bias.detach()])
        theta, stopped = _lbfgs(loss_and_grad, theta, should_stop)
    finally:
        torch.set_num_threads(threads)
    if stopped:
        return False
    with torch.no_grad():
        weight.copy_(theta[: n_classes * dim].view(n_classes, dim))
        bias.copy_(theta[n_classes * dim:])
    return True


def _lbfgs(loss_and_grad, theta: torch.Tensor, should_stop: ShouldStop) -> tuple[torch.Tensor, bool]:
    """The minimiser of ``loss_and_grad`` from ``theta``, and whether Stop was pressed on the way."""
    f, g = loss_and_grad(theta)
    steps: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / y.s), oldest first
    for iteration in range(MAX_ITERATIONS):
        if g.abs().max() <= TOLERANCE:
            break
        if iteration % _STOP_EVERY == 0 and should_stop():
            return theta, True
        d = -_two_loop(g, steps)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction (rounding): start again from the gradient
            steps.clear()
            d, slope = -g, -float(g @ g)
        # The first step is scaled to the gradient, as torch's L-BFGS does; later ones try the full step.
        t = 1.0 if steps else min(1.0, 1.0 / float(g.abs().sum()))
        while True:
            f_new, g_new = loss_and_grad(theta + t * d)
            if f_new <= f + _ARMIJO * t * slope or t < _SMALLEST_STEP:
                break
            t *= 0.5
        s, dg = t * d, g_new - g
        sy = float(s @ dg)
        if sy > 1e-10:  # keep only pairs with positive curvature (always, up to rounding, for this objective)
            steps.append((s, dg, 1.0 / sy))
            del steps[:-HISTORY]
        theta, f_old, f, g = theta + s, f, f_new, g_new
        if abs(f_old - f) <= 1e-12 * max(1.0, abs(f)):
            break
    return theta, False


def _two_loop(g: torch.Tensor, steps: list[tuple[torch.Tensor, torch.Tensor, float]]) -> torch.Tensor:
    """The inverse-Hessian approximation of the stored pairs applied to ``g``."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(steps):
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append(alpha)
    if steps:
        s, y, _rho = steps[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
        q += (alpha - rho * float(y @ q)) * s
    return q
