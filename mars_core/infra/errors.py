"""Errors a user can fix: each message names what was wrong and what is accepted.

Entry points (CLI, search service) catch `UserInputError` and show its one-line message
instead of a traceback; everything else is a bug and keeps its traceback.
"""

import re


class UserInputError(ValueError):
    """Bad input from a user (a file, a path, a config value); the message says how to fix it."""


class ImageError(UserInputError):
    """An image that cannot be used: every image check (ingest, embedder, agent, search
    requests, the report) raises one of this family, so ingest quarantines exactly what the
    later stages would refuse."""


class BadImageError(ImageError):
    """A file that is missing or cannot be decoded as an image."""


class ImageMissingError(BadImageError):
    """No readable file at the path."""


class ImageTooLargeError(ImageError):
    """An image over the pixel limit, including decompression bombs."""


class AdapterNotFoundError(UserInputError):
    """A LoRA adapter folder or MLflow model alias that does not resolve to an adapter."""


class EmptyQueryError(UserInputError):
    """A query with nothing to search for."""


class QueryTooLongError(UserInputError):
    """A query over `funnel.max_query_chars` characters or `funnel.max_query_words` words."""


class IndexNotBuiltError(UserInputError, FileNotFoundError):
    """Searching before the index build flow has published an index."""


class ModelServerError(UserInputError):
    """A model server (the served agent) that gives no usable answer: start it, or fix the
    endpoint or the served model's name."""


class IndexDamagedError(UserInputError):
    """A published index with a missing, unreadable or altered part (the message names the
    part and the command that repairs it)."""


class RemovalGuardError(UserInputError):
    """A re-index that would drop more of the live index than the configured share."""


class ConfigError(UserInputError):
    """A Hydra override or config value that does not compose or validate."""


class ModelNotFoundError(UserInputError, FileNotFoundError):
    """Model weights that are not on this machine (runs are offline: nothing is downloaded)."""


# C0 controls but tab and newline, DEL and C1 controls: a terminal obeys them (ESC starts
# colour and cursor sequences, BEL rings, CR overwrites the line) instead of showing them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters removed, for a terminal: user and catalogue text
    (queries, product names, reasons quoting them) must print, never steer it."""
    return _CONTROL.sub("", text)


def one_line(error: BaseException | str, limit: int = 200) -> str:
    """An error's message on one line (whitespace collapsed, cut at `limit` characters), to
    quote inside another message; its type's name when it has no message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."
