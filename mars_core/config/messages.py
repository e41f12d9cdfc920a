"""What a person reads when the composed config does not fit the schema.

Hydra and OmegaConf put the useful part of a message on several lines (the options of a
group, the key) and bury the rest in internals (search path, object types). This keeps the
useful lines on one line and, for a misspelt key, names the closest keys the schema has.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing

from mars_core.config import MarsConfig

INTERNAL_LINES = ("full_key:", "reference_type=", "object_type=", "See https://", "To append")
OVERRIDE_KEY = re.compile(r"Could not override '([^']+)'")
CLOSE_KEYS = 3
# Hydra's message for an override whose value the schema refuses; the reason is in its cause.
MERGE_FAILED = "Error merging override"


def schema_keys(schema: type = MarsConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (`funnel.k2`, `data.world.products`, ...)."""
    keys: list[str] = []
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        name = f"{prefix}{field.name}"
        keys.append(name)
        if dataclasses.is_dataclass(hints[field.name]):
            keys += schema_keys(hints[field.name], f"{name}.")
    return keys


def _lines(error: BaseException) -> list[str]:
    """The message's lines up to Hydra's search-path dump, without OmegaConf internals."""
    lines: list[str] = []
    for raw in str(error).splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if line and not line.startswith(INTERNAL_LINES):
            lines.append(line)
    return lines


def _joined(lines: list[str]) -> str:
    """Lines on one line; a list under "...:" (Hydra's "Available options") joined by commas."""
    parts: list[str] = []
    for line in lines:
        if parts and parts[-1].endswith(":"):
            parts[-1] += f" {line}"
        elif parts and parts[-1].startswith("Available options"):
            parts[-1] += f", {line}"
        else:
            parts.append(line)
    return "; ".join(parts)


def _key(error: BaseException) -> str | None:
    """The dotted key the error is about, from OmegaConf's `full_key` or Hydra's message."""
    while error is not None:
        if key := getattr(error, "full_key", None):
            return str(key)
        if match := OVERRIDE_KEY.search(str(error)):
            return match.group(1)
        error = error.__cause__ or error.__context__
    return None


def key_hint(key: str) -> str:
    """For a key the schema lacks: the same name deeper in its section (a knob moved into a
    part, `teacher.endpoint` -> `teacher.server.endpoint`), else the closest valid names
    (difflib), else the section's keys."""
    keys = schema_keys()
    if key in keys:
        return ""
    section, _, name = key.rpartition(".")
    within = f"{section}." if section else ""
    deeper = [k for k in keys if k.startswith(within) and k.rpartition(".")[2] == name]
    if 0 < len(deeper) <= CLOSE_KEYS:
        return f": no such key; did you mean {' or '.join(deeper)}?"
    siblings = [k for k in keys if k.rpartition(".")[0] == section]
    if not siblings:  # the section itself is misspelt: compare whole keys
        close = difflib.get_close_matches(key, keys, n=CLOSE_KEYS, cutoff=0.6)
    else:
        by_name = {k.rpartition(".")[2]: k for k in siblings}
        names = difflib.get_close_matches(name, by_name, n=CLOSE_KEYS, cutoff=0.5)
        close = [by_name[n] for n in names]
    if close:
        return f": no such key; did you mean {' or '.join(close)}?"
    if not siblings:  # nothing alike either: name the sections there are
        sections = sorted({k.partition(".")[0] for k in keys if "." in k})
        return f": no such key; {section!r} is no section; the sections are {', '.join(sections)}"
    shown = ", ".join(k.rpartition(".")[2] for k in siblings)
    return f": no such key; valid keys under {section or 'the root'}: {shown}"


def config_error_message(error: BaseException) -> str:
    """One line: Hydra's or OmegaConf's message (options kept), the reason it buries in its
    cause (a value of the wrong type), the key and what it takes, or the closest keys."""
    text = _joined(_lines(error)) or type(error).__name__
    if text.startswith(MERGE_FAILED):
        text = f"{text}: {_root_reason(error)}"
    key = _key(error)
    if key is None:
        return text
    located = (text if key in text else f"{text} (at {key})").rstrip(".")
    hint = key_hint(key.lstrip("+~"))
    expected = expected_type(key.lstrip("+~"))
    return located + (hint or (f"; {key} takes {expected}" if expected else ""))


def _root_reason(error: BaseException) -> str:
    """The first line of the innermost cause: why the value did not merge."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    return (_lines(root) or [type(root).__name__])[0].rstrip(".")


def expected_type(key: str, schema: type = MarsConfig) -> str:
    """The schema's type of a dotted key, as a reader writes it (`int`, `list[str]`, `float |
    None`); empty when the schema has no such key."""
    hint: object = schema
    for part in key.split("."):
        if not dataclasses.is_dataclass(hint):
            return ""
        hints = typing.get_type_hints(hint)
        if part not in hints:
            return ""
        hint = hints[part]
    return _type_name(hint)


def _type_name(hint: object) -> str:
    if dataclasses.is_dataclass(hint):
        return f"a section ({hint.__name__})"
    name = getattr(hint, "__name__", None)
    if name and not typing.get_args(hint):
        return name
    return str(hint).replace("typing.", "").replace("NoneType", "None")
