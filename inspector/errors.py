"""Errors of the inspection core. The CLI maps InspectorError to exit status 2; the UI shows it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class InspectorError(Exception):
    """Base class: a fault the user can act on; the message says what to do."""


class ConfigError(InspectorError):
    """The station configuration is missing, malformed or inconsistent."""


class LibraryError(InspectorError):
    """A description library file or record is invalid."""


class DataError(InspectorError):
    """Input data (images, folders, CSV files) cannot be used as given."""


class ModelLoadError(InspectorError):
    """A model could not be built or loaded (bad file, hash mismatch, unknown name)."""


class CameraError(InspectorError):
    """A frame source cannot be opened or read (missing device, lost stream, closed source)."""


class ImageDecodeError(DataError):
    """Image bytes are empty, truncated, corrupt, of a refused format, or too large to decode."""


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """Re-raise the model side's errors as the core's own (ModelLoadError, DataError)."""
    from models.errors import ModelError

    try:
        yield
    except InspectorError:
        raise
    except ModelError as exc:
        raise ModelLoadError(str(exc)) from exc
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(str(exc)) from exc
