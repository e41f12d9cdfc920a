"""`knob(default, help, ...)`: a dataclass field that carries its explanation and its limits.

A knob may declare the range (`ge`, `le`, `gt`, `lt`) or the choices its value must keep to;
`check_knobs` enforces every declared limit of a config in one place, with one-line messages
that name the knob by its dotted key, so a config's `__post_init__` keeps only the rules that
relate several knobs.
"""

import copy
import dataclasses
import operator
from dataclasses import field
from typing import Any

TESTS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
BRACKETS = {"ge": "[", "gt": "(", "le": "]", "lt": ")"}


def knob(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A field whose help text and limits travel with it, so `check_knobs`, `--cfg job` output
    and docs can use them.

    Mutable defaults are deep-copied per instance. The help text ends with the limits.
    """
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    metadata: dict[str, Any] = {"help": help}
    if bounds:
        metadata["bounds"] = bounds
        metadata["help"] += f" (must {_limits(bounds)})"
    if choices is not None:
        metadata["choices"] = tuple(choices)
        metadata["help"] += f" (one of {', '.join(choices)})"
    if isinstance(default, list | dict) or hasattr(default, "__dataclass_fields__"):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _number(bound: float) -> str:
    """1.0 as 1, 0.5 as 0.5: bounds read as a person writes them."""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _limits(bounds: dict[str, float]) -> str:
    """`lie in [0, 1)` for a range, `be >= 1` for a one-sided bound."""
    lower = [name for name in ("ge", "gt") if name in bounds]
    upper = [name for name in ("le", "lt") if name in bounds]
    if lower and upper:
        low, high = lower[0], upper[0]
        interval = f"{_number(bounds[low])}, {_number(bounds[high])}"
        return f"lie in {BRACKETS[low]}{interval}{BRACKETS[high]}"
    name = (lower or upper)[0]
    return f"be {SYMBOLS[name]} {_number(bounds[name])}"


def check_knobs(config: Any, prefix: str) -> None:
    """Every declared range and choice of `config` and of the dataclasses nested in it.

    `prefix` is the config's dotted key (`train`, `student`): a nested one is checked as
    `<prefix>.<field>`, so a group's `__post_init__` calls this once for everything under it.
    A None value (an optional knob left unset) is not checked.
    """
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        name = f"{prefix}.{item.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_knobs(value, name)
            continue
        if value is None:
            continue
        choices = item.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ValueError(f"{name} {value!r} unknown; use one of {choices}")
        bounds = item.metadata.get("bounds", {})
        if not all(TESTS[kind](value, bound) for kind, bound in bounds.items()):
            raise ValueError(f"{name} {value!r} must {_limits(bounds)}")
