"""`knob(default, help)`: a dataclass field that carries its own explanation."""

import copy
from dataclasses import field
from typing import Any


def knob(default: Any, help: str) -> Any:
    """A field whose help text travels with it, so `--cfg job` output and docs can explain it.

    Mutable defaults are deep-copied per instance.
    """
    if isinstance(default, list | dict) or hasattr(default, "__dataclass_fields__"):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})
