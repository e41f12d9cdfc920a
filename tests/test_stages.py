"""Funnel stages by name: the registry, and stage lists checked when the config composes."""

from __future__ import annotations

import pytest

from mars_core.app.compose import load_config
from mars_core.funnel.stages import StageSpec, check_stages, known_stages, register_stage
from mars_core.infra.errors import ConfigError


def test_the_registry_lists_the_three_stages_in_funnel_order():
    assert known_stages() == ["bm25", "siglip", "agent"]


def test_a_stage_name_registers_once():
    with pytest.raises(ValueError, match="'bm25' is already registered"):
        register_stage(
            StageSpec("bm25", lambda funnel: funnel.k1, lambda cfg, snapshot, models: None)
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("funnel.stages=[bm25,clip]", "unknown stage 'clip' in [bm25, clip]; known stages: bm25"),
        ("funnel.stages=[siglip,agent]", "must start with 'bm25'"),
        ("funnel.stages=[bm25,agent,siglip]", "in the order bm25, siglip, agent"),
        ("funnel.stages=[bm25,bm25]", "list each stage once"),
        ("eval.ablations=[[bm25],[bm25,vibes]]", "eval.ablations[1]: unknown stage 'vibes'"),
    ],
)
def test_a_bad_stage_list_is_one_config_error_naming_the_key(session_overrides, override, message):
    with pytest.raises(ConfigError, match=r"^[^\n]+$") as raised:
        load_config([*session_overrides, override])
    assert message in str(raised.value)


def test_an_ablation_is_checked_like_the_funnel():
    assert check_stages(["bm25", "agent"]) == ["bm25", "agent"]
    with pytest.raises(ConfigError, match=r"eval\.ablations\[0\]"):
        check_stages([], key="eval.ablations[0]")
