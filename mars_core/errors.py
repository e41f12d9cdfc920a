"""Errors a user can fix: each message names what was wrong and what is accepted.

Entry points (CLI, search service) catch `UserInputError` and show its one-line message
instead of a traceback; everything else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """Bad input from a user (a file, a path, a config value); the message says how to fix it."""


class BadImageError(UserInputError):
    """A file that is missing or cannot be decoded as an image."""


class ImageTooLargeError(UserInputError):
    """An image over the pixel limit, including decompression bombs."""


class AdapterNotFoundError(UserInputError):
    """A LoRA adapter folder or MLflow model alias that does not resolve to an adapter."""


class EmptyQueryError(UserInputError):
    """A query with nothing to search for."""


class IndexNotBuiltError(UserInputError, FileNotFoundError):
    """Searching before the index build flow has published an index."""


class ConfigError(UserInputError):
    """A Hydra override or config value that does not compose or validate."""


class ModelNotFoundError(UserInputError, FileNotFoundError):
    """Model weights that are not on this machine (runs are offline: nothing is downloaded)."""
