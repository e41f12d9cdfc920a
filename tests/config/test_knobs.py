"""A knob's declared range and choices: recorded on the field, checked by one validator with
one-line messages that name the knob by its dotted key."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mars_core.app.compose import load_config
from mars_core.config import ServeConfig
from mars_core.infra.errors import ConfigError
from mars_core.infra.knob import check_knobs, knob


@dataclasses.dataclass
class Inner:
    share: float = knob(0.5, "a share", ge=0, lt=1)


@dataclasses.dataclass
class Example:
    count: int = knob(1, "how many", ge=1)
    share: float = knob(0.25, "a share", gt=0, le=1)
    mode: str = knob("fast", "how", choices=("fast", "slow"))
    limit: int | None = knob(None, "optional; null = none", ge=0)
    inner: Inner = knob(Inner(), "a nested part")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 0}, "example.count 0 must be >= 1"),
        ({"share": 0.0}, "example.share 0.0 must lie in (0, 1]"),
        ({"share": 1.5}, "example.share 1.5 must lie in (0, 1]"),
        ({"mode": "medium"}, "example.mode 'medium' unknown; use one of ('fast', 'slow')"),
        ({"limit": -1}, "example.limit -1 must be >= 0"),
        ({"inner": Inner(share=1.0)}, "example.inner.share 1.0 must lie in [0, 1)"),
    ],
)
def test_a_value_outside_its_range_or_choices_is_refused_in_one_line(change, message):
    with pytest.raises(ValueError) as refused:
        check_knobs(dataclasses.replace(Example(), **change), "example")
    assert str(refused.value) == message


def test_values_on_the_bounds_and_an_unset_optional_pass():
    check_knobs(Example(count=1, share=1.0, mode="slow", limit=None), "example")


def test_the_help_text_shows_the_limits():
    fields = {f.name: f.metadata for f in dataclasses.fields(Example)}
    assert fields["share"]["help"] == "a share (must lie in (0, 1])"
    assert fields["mode"]["help"] == "how (one of fast, slow)"
    assert fields["share"]["bounds"] == {"gt": 0, "le": 1}
    assert fields["mode"]["choices"] == ("fast", "slow")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("funnel.siglip_blend=1.5", "funnel.siglip_blend 1.5 must lie in [0, 1]"),
        ("train.method=sgd", "train.method 'sgd' unknown; use one of ('full', 'lora', 'qlora')"),
        ("teacher.server.timeout=0", "teacher.server.timeout 0.0 must be > 0"),
        ("student.tiny.family=llama", "student.tiny.family 'llama' unknown"),
    ],
)
def test_composed_configs_are_checked_by_their_dotted_keys(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config([override])


def test_a_group_config_checks_its_knobs_when_built():
    with pytest.raises(ValueError, match=r"serve\.port 99999 must lie in \[0, 65535\]"):
        ServeConfig(port=99999)
