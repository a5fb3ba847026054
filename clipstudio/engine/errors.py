"""Errors a user can cause. Each carries one clear sentence; bugs stay ordinary exceptions."""

from __future__ import annotations


class ClipStudioError(Exception):
    """Base class for user-facing errors: the CLI prints the message and exits 2, the GUI shows it."""


class DataError(ClipStudioError):
    """The dataset can't be used as given (structure, format, too few classes...)."""


class ImageError(DataError):
    """One image can't be decoded; readers skip it and record the reason."""


class ModelError(ClipStudioError):
    """A model can't be found, downloaded or loaded."""


class ConfigError(ClipStudioError):
    """A config file or argument is invalid."""


class DiskFullError(ClipStudioError):
    """The disk holding a run folder or cache is full; what was saved before is kept."""
