"""The Qt-free engine of CLIP Studio: data, prompts, models, evaluation.

Importing this package must stay cheap and must never import Qt; heavy modules
(torch, transformers) are imported by the submodules that need them.
"""

from clipstudio.engine.errors import ClipStudioError, ConfigError, DataError, ModelError

__all__ = ["ClipStudioError", "ConfigError", "DataError", "ModelError"]
