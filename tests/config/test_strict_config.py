"""A misspelt option of any group, `experiment` included, and a value of the wrong type end a
command in one line that says what is accepted, before anything runs."""

from __future__ import annotations

import pytest

from mars_core.app.apps import APPS
from mars_core.app.cli import group_options, run_app


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    def never(_call: object) -> None:
        raise AssertionError("the command ran; it should have failed first")

    with pytest.raises(SystemExit) as exited:
        run_app(APPS["train"], argv, never)
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "\n" not in err and err.startswith("error:"), err
    return err


@pytest.mark.parametrize("group", sorted(group_options()))
def test_a_misspelt_option_of_any_group_names_the_options(group, capsys):
    options, _ = group_options()[group]
    err = _error([f"{group}={options[0]}x"], capsys)
    assert f"Could not find '{group}/{options[0]}x'" in err
    assert f"Available options in '{group}': {', '.join(options)}" in err


def test_experiment_ful_is_refused_not_ignored(capsys):
    err = _error(["experiment=ful"], capsys)
    assert "Available options in 'experiment': full, tiny" in err


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("funnel.k3=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
        ("train.learning_rate=fast", "train.learning_rate takes float"),
        ("student.load_in_4bit=maybe", "student.load_in_4bit takes bool"),
        ("funnel.stages=3", "funnel.stages takes list[str]"),
    ],
)
def test_a_wrong_type_names_the_key_the_value_and_the_type(override, says, capsys):
    err = _error([override], capsys)
    key, _, value = override.partition("=")
    assert f"{key}={value}" in err and says in err
    if override == "funnel.k3=abc":
        assert err.endswith("funnel.k3 takes int")
