"""Every config option composes, validates and (where possible offline) instantiates, and
states only what differs from the schema's defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from mars_core.app.compose import conf_dir, load_config
from mars_core.config import GROUPS, EmbedderConfig, MarsConfig
from mars_core.infra.errors import ConfigError, UserInputError
from mars_core.models.loading import load_clip, load_vlm

SUBGROUPS = ("index/vocabulary",)


def group_options(groups: tuple[str, ...] = GROUPS) -> list[tuple[str, str]]:
    return [
        (group, path.stem)
        for group in groups
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


@pytest.mark.parametrize(("group", "option"), group_options(("experiment", *SUBGROUPS)))
def test_experiment_and_subgroup_options_compose_and_validate(group, option, session_overrides):
    assert isinstance(load_config([*session_overrides, f"{group}={option}"]), MarsConfig)


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


def test_a_knob_moved_into_a_part_is_suggested_at_its_new_key():
    with pytest.raises(ConfigError, match=r"did you mean teacher\.server\.endpoint\?"):
        load_config(["teacher.endpoint=http://127.0.0.1:8000/v1"])


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
        assert load_config([override]).teacher.server.endpoint
        with pytest.raises(ConfigError, match="endpoint"):
            load_config([override, "teacher.server.endpoint=null"])
        return
    with pytest.raises(ConfigError, match=message):
        load_config([override])


def _plain(path: Path) -> dict[str, Any]:
    """An option file's own keys, interpolations unresolved."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _restated(values: dict, defaults: dict, at: str = "") -> list[str]:
    """Keys of `values` whose value equals the default underneath (nested dicts walked)."""
    found = []
    for key, value in values.items():
        if key not in defaults:
            continue  # an unknown key fails composition, tested above
        default = defaults[key]
        if isinstance(value, dict) and isinstance(default, dict):
            found += _restated(value, default, f"{at}{key}.")
        elif value == default:
            found.append(f"{at}{key}")
    return found


def option_files() -> list[tuple[str, Path]]:
    """(package, file) of the root config and every option of every group and subgroup."""
    files = [("", conf_dir() / "config.yaml")]
    for group in (*GROUPS, *SUBGROUPS, "experiment"):
        package = "" if group == "experiment" else group.replace("/", ".")
        files += [(package, path) for path in sorted((conf_dir() / group).glob("*.yaml"))]
    return files


@pytest.mark.parametrize(
    ("package", "path"),
    [pytest.param(pkg, path, id=str(path.relative_to(conf_dir()))) for pkg, path in option_files()],
)
def test_option_files_hold_only_what_differs_from_the_defaults(package, path):
    """The dataclasses are the one source of defaults: a key that restates one (or restates
    the option it extends) would drift from it unnoticed."""
    defaults = OmegaConf.to_container(OmegaConf.structured(MarsConfig))
    for part in filter(None, package.split(".")):
        defaults = defaults[part]
    values = _plain(path)
    entries = values.pop("defaults", [])
    if path.parent == conf_dir():
        entries = []  # the root's plain entry is the schema itself
    for sibling in [e for e in entries if isinstance(e, str) and e != "_self_"]:
        defaults = _merged(defaults, _plain(path.parent / f"{sibling}.yaml"))
    assert not _restated(values, defaults), f"{path.name} restates defaults"


def _pixel_limits(schema: type, at: str = "") -> list[str]:
    found = []
    for field in dataclasses.fields(schema):
        kind = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(kind):
            found += _pixel_limits(type(kind), f"{at}{field.name}.")
        elif field.name.endswith(("image_pixels", "input_pixels")):
            found.append(f"{at}{field.name}")
    return found


def test_one_pixel_limit_guards_every_image():
    """Ingest, embedder, teacher, student and report read the same images: one knob."""
    assert _pixel_limits(MarsConfig) == ["data.max_image_pixels"]
