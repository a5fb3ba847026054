"""``export_model(spec, "hf"|"onnx", folder)``: a model or a training run's model, for use outside CLIP Studio.

The folder is filled beside the destination and renamed onto it at the end, so a failed or
refused export leaves nothing behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.export import FORMATS
from clipstudio.engine.export.folder import checked_output_folder, staged_folder
from clipstudio.engine.export.head import ClassHead, class_head
from clipstudio.engine.export.hf import export_hf
from clipstudio.engine.export.onnx import export_onnx, require_onnx
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.tip_adapter_head import TipAdapterModel
from clipstudio.engine.prompts import PromptSet, run_prompt_set
from clipstudio.engine.runs.layout import is_run_folder, read_run_config, read_run_info

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
N_CHECK_IMAGES = 4


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the folder, its files, and (ONNX) the worst cosine of the self-check."""

    output: Path
    format: str
    model_kind: str
    layout: str
    files: list[str]
    class_names: list[str] = field(default_factory=list)
    parity: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"output": str(self.output), "format": self.format, "model_kind": self.model_kind,
                "layout": self.layout, "files": self.files, "class_names": self.class_names,
                "parity": self.parity}  # fmt: skip


def export_model(
    spec: str,
    fmt: str,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    class_names: list[str] | None = None,
) -> ExportResult:
    """Export the model ``spec`` names (a run folder, model folder, Hub id or "builtin") as ``fmt`` into ``output``.

    class_names: the classes of the ONNX head for a plain model (a run brings its own); without
        them an ONNX export of a plain model has encoders but no head.
    Raises ConfigError for bad arguments (before loading anything) and ModelError when the model
    can't be exported or the ONNX self-check fails; ``output`` is then left as it was.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: unknown; choose one of {', '.join(FORMATS)}.")
    folder = checked_output_folder(output, overwrite=overwrite)
    if fmt == "onnx":
        require_onnx()
    model, head_source, check_images = _load(spec, class_names)
    if fmt == "onnx" and isinstance(model, TipAdapterModel):
        raise ModelError(
            "A Tip-Adapter run can't be exported as ONNX: it compares each image with its cached training "
            "images, which the ONNX head (one row per class) can't hold; use --format hf, which carries the cache."
        )
    base = getattr(model, "base", model)
    if hasattr(base, "bf16_inference"):
        base.bf16_inference = False  # exported heads and parity references are full precision
    head: ClassHead | None = class_head(model, *head_source) if head_source else None
    with staged_folder(folder) as stage:
        if fmt == "hf":
            layout, parity = export_hf(model, stage), {}
        else:
            layout, parity = "onnx", export_onnx(model, stage, head, check_images)
        files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return ExportResult(folder, fmt, base.kind, layout, files, head.class_names if head else [], parity)


def _load(
    spec: str, class_names: list[str] | None
) -> tuple[ImageTextModel, tuple[list[str], PromptSet] | None, list[Path]]:
    """The model, the (classes, prompts) of its head, and a few of its real images to check an export on."""
    path = Path(spec).expanduser()
    if path.is_dir() and is_run_folder(path):
        if class_names:
            raise ConfigError("--class: a run exports the classes it was trained on; leave --class out.")
        model = load_run_model(path, "best", device="cpu")
        names = [str(n) for n in read_run_info(path).get("class_names") or []]
        head = (names, run_prompt_set(path)) if len(names) >= 2 else None
        return model, head, _run_images(path)
    model = load_model(spec, device="cpu")
    if class_names and len(set(class_names)) < 2:
        raise ConfigError("--class: give at least 2 different classes for the classification head.")
    return model, ((list(class_names), PromptSet()) if class_names else None), []


def _run_images(run: Path) -> list[Path]:
    """Up to ``N_CHECK_IMAGES`` images of the run's data folder, when it still exists."""
    data = Path(read_run_config(run).data.path or "")
    if not data.is_dir():
        return []
    found = (p for p in sorted(data.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return list(islice(found, N_CHECK_IMAGES))
