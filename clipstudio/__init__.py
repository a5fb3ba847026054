"""CLIP Studio: adapt CLIP-style image-text models to your own medical images."""

__version__ = "0.1.0"
