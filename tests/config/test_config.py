"""Every config group option composes, validates and (where possible offline) instantiates."""

from __future__ import annotations

import pytest

from mars_core.compose import conf_dir, load_config
from mars_core.config import GROUPS, EmbedderConfig, MarsConfig
from mars_core.errors import ConfigError, UserInputError
from mars_core.models.loading import load_clip, load_vlm


def group_options() -> list[tuple[str, str]]:
    return [
        (group, path.stem)
        for group in GROUPS
        for path in sorted((conf_dir() / group).glob("*.yaml"))
    ]


def test_every_group_has_a_tiny_default_and_a_real_option():
    options = group_options()
    for group in GROUPS:
        names = {name for g, name in options if g == group}
        assert names, f"conf/{group}/ is empty"
        assert len(names) >= 2, f"conf/{group}/ needs the tiny and a real-size option"
    cfg = load_config()
    assert cfg.student.tiny is not None and cfg.embedder.tiny is not None
    assert cfg.data.source == "synthetic"


@pytest.mark.parametrize(("group", "option"), group_options())
def test_group_option_composes_and_validates(group, option, session_overrides):
    cfg = load_config([*session_overrides, f"{group}={option}"])
    assert isinstance(cfg, MarsConfig)
    assert getattr(cfg, group).name == option


def model_options() -> list[tuple[str, str]]:
    """Options that load a model in process (not the metadata or server-side teachers)."""

    def loads_a_model(group: str, option: str) -> bool:
        if group == "teacher":
            return load_config([f"teacher={option}"]).teacher.kind == "vlm"
        return group in ("embedder", "student")

    return [(group, option) for group, option in group_options() if loads_a_model(group, option)]


@pytest.mark.slow
@pytest.mark.parametrize(("group", "option"), model_options())
def test_model_options_instantiate_offline(group, option, session_overrides, model_cache):
    """Tiny models load for real; real ones, whose weights are not on this machine, fail at
    once with a message saying what to put where (never a hang on the hub)."""
    part = getattr(load_config([*session_overrides, f"{group}={option}"]), group)
    load = load_clip if isinstance(part, EmbedderConfig) else load_vlm
    if part.tiny is not None:
        assert load(part, model_cache).model is not None
        return
    with pytest.raises(UserInputError, match=r"offline|CUDA"):
        load(part, model_cache)


def test_real_profile_names_the_real_models():
    cfg = load_config(["experiment=full"])
    assert cfg.student.pretrained == "Qwen/Qwen2-VL-2B-Instruct"
    assert cfg.teacher.pretrained == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert cfg.embedder.model == "ViT-SO400M-14-SigLIP-384"
    assert (cfg.funnel.k1, cfg.funnel.k2, cfg.funnel.k3) == (200, 20, 5)
    assert cfg.train.method == "qlora"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(["+embedder.batchsize=3"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="k1"):
        load_config(["funnel.k1=many"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("funnel.k2=500", "k1 >= k2 >= k3"),
        ("train.method=sgd", "train.method"),
        ("student.dtype=int3", "dtype"),
        ("teacher=vllm", None),
    ],
)
def test_contradictions_say_what_to_change(override, message):
    if message is None:
        assert load_config([override]).teacher.endpoint
        with pytest.raises(ConfigError, match="endpoint"):
            load_config([override, "teacher.endpoint=null"])
        return
    with pytest.raises(ConfigError, match=message):
        load_config([override])


def test_every_yaml_option_spells_out_every_knob_of_its_group():
    """Reading one option file shows every knob; a knob added to a dataclass without its
    YAML lines fails here (sub-groups pulled in by `defaults`, like the vocabulary, count)."""
    import dataclasses

    import yaml

    schemas = {f.name: f.type for f in dataclasses.fields(MarsConfig)}
    for group in GROUPS:
        knobs = {f.name for f in dataclasses.fields(schemas[group])}
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            spelled = yaml.safe_load(path.read_text()) or {}
            subgroups = {
                next(iter(entry))
                for entry in spelled.get("defaults", [])
                if isinstance(entry, dict)
            }
            missing = knobs - set(spelled) - subgroups
            assert not missing, f"{path.relative_to(conf_dir())} lacks {sorted(missing)}"
