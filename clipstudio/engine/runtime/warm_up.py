"""Import the heavy libraries a first job needs, ahead of that job.

Importing torch, transformers and friends holds the GIL for stretches of 50-500 ms (extension
modules initialising, bytecode unmarshalling, dataclass creation). In a desktop app that import
would otherwise happen inside the first training or embedding job, freezing the window for half a
second just as the user starts working. The app calls :func:`import_engine` in a worker right after
its first paint instead, so the pause lands while nothing is happening, and later jobs find every
module loaded. Nothing here touches the network or the disk beyond importing.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Two threads importing torch/transformers at once can each hold a module the other needs; Python
# then breaks the cycle by handing one of them a half-initialised module ("cannot import name
# 'AutoModel' from 'transformers'"). Every caller imports under this lock, so the first does the
# work and the others wait, then find everything in sys.modules.
_IMPORT_LOCK = threading.RLock()

# What loading a model, training, evaluating and searching import, heaviest first. peft is included
# (LoRA) because its import pulls in parts of transformers a LoRA run would otherwise load mid-job.
MODULES = (
    "torch",
    "safetensors.torch",
    "transformers",
    "transformers.models.clip.modeling_clip",
    "transformers.models.clip.image_processing_pil_clip",
    "transformers.models.bert.modeling_bert",
    "transformers.models.auto.tokenization_auto",
    "tokenizers",
    "sklearn.metrics",
    "sklearn.model_selection",
    "efficientnet_lite_pytorch",
    "peft",
    "clipstudio.engine.models",
    "clipstudio.engine.models.hf_clip",
    "clipstudio.engine.models.builtin",
    "clipstudio.engine.models.dual_encoder",
    "clipstudio.engine.embeddings",
    "clipstudio.engine.evaluation.zero_shot",
    "clipstudio.engine.prompts",
    "clipstudio.engine.evaluation.search",
    "clipstudio.engine.training.trainer",
    "clipstudio.engine.training.setup",
    "clipstudio.engine.training.methods.contrastive",
    "clipstudio.engine.training.methods.linear_probe",
    "clipstudio.engine.training.methods.lora",
    "clipstudio.engine.training.methods.tip_adapter",
    "clipstudio.engine.evaluation.wise",
    "clipstudio.engine.runs.layout",
)


def import_engine(should_stop: Callable[[], bool] = lambda: False) -> dict[str, float]:
    """Import :data:`MODULES` (those installed); returns seconds per module actually imported.

    Safe to call from several threads at once (they are serialised); a GUI calls it at the start of
    every background job, so a job started before the start-up warm-up has finished waits for it
    instead of importing the same libraries concurrently.

    A module that is missing or fails to import is skipped and logged: the job that needs it will
    report the problem properly when it runs.
    """
    import sys

    seconds: dict[str, float] = {}
    if all(name in sys.modules for name in MODULES):
        return seconds  # the common case once warmed up: no lock needed
    with _IMPORT_LOCK:
        for name in MODULES:
            if should_stop():
                break
            if name in sys.modules:
                continue
            start = time.perf_counter()
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - optional or broken: the job itself will say
                log.info("warm-up: could not import %s: %s", name, exc)
                continue
            seconds[name] = time.perf_counter() - start
    if seconds:
        log.info("warm-up: imported %d modules in %.2f s", len(seconds), sum(seconds.values()))
    return seconds
