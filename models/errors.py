"""Errors raised by the models package; the core converts them at its boundary."""


class ModelError(Exception):
    """A model could not be built, loaded, saved or run; the message says what to do."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, unsafe, corrupt or does not match its sidecar."""
