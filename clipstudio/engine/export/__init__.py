"""Export a model or a training run's model for use outside CLIP Studio (``model_export.export_model``).

``hf``: a folder plain transformers loads (``export.hf``); ``onnx``: ONNX encoders plus the
classification head, checked against PyTorch with onnxruntime (``export.onnx``). This package's
own import stays light (no torch), so the CLI can name the formats in ``--help``.
"""

FORMATS = ("hf", "onnx")
