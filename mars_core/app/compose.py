"""Compose the Hydra config from a list of overrides and validate it.

Flows take `overrides: list[str]`, so the command line, tests and Prefect deployments drive
them the same way. The dataclasses of `mars_core.config` are the schema and every knob's
default: `MarsConfig` is registered in Hydra's ConfigStore as `SCHEMA_NAME`, the first entry of
`conf/config.yaml`'s defaults list, and each option file merged on top holds only what differs.
Composition happens inside the flow (no `@hydra.main`): Hydra's logging set-up would otherwise
turn on httpx INFO logs for every Prefect API call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mars_core.config import MarsConfig
from mars_core.config.messages import config_error_message
from mars_core.funnel.stages import check_config_stages
from mars_core.infra.errors import ConfigError
from mars_core.infra.runtime import find_home

CONFIG_NAME = "config"
SCHEMA_NAME = "mars_schema"
# A flow's named parameters (what a deployment's run form shows) and the key each one sets.
PARAMETER_KEYS = {
    "max_steps": "train.max_steps",
    "learning_rate": "train.learning_rate",
    "seed": "train.seed",
}


def conf_dir() -> Path:
    """The `conf/` folder of the checkout this code runs from, else the packaged `mars_conf`."""
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / f"{CONFIG_NAME}.yaml").is_file():
        return checkout
    packaged = Path(str(resources.files("mars_conf")))
    if (packaged / f"{CONFIG_NAME}.yaml").is_file():
        return packaged
    raise FileNotFoundError("MARS config folder not found: install the package or run from a clone")


def register_schema() -> None:
    """The `mars_home` resolver, and the schema with every default in the ConfigStore."""
    if not OmegaConf.has_resolver("mars_home"):
        OmegaConf.register_new_resolver("mars_home", lambda: str(find_home()))
    ConfigStore.instance().store(name=SCHEMA_NAME, node=MarsConfig)


@contextmanager
def hydra_initialized() -> Iterator[None]:
    """Hydra initialised on the project's conf/, unless it already is: a sweep's jobs compose
    their configs inside the sweep's own Hydra."""
    register_schema()
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield


def _compose(overrides: list[str] | None, *, with_hydra: bool = False) -> DictConfig:
    with hydra_initialized():
        return compose(CONFIG_NAME, list(overrides or []), return_hydra_config=with_hydra)


def compose_yaml(overrides: list[str] | None = None) -> DictConfig:
    """The composed, interpolated config (types checked, `__post_init__` not yet run), e.g. for
    logging as params."""
    cfg = _compose(overrides)
    OmegaConf.resolve(cfg)
    return cfg


def load_config(overrides: list[str] | None = None) -> MarsConfig:
    """Compose and validate: unknown keys, wrong types and contradictions fail here, by name.

    Every such failure is a `ConfigError` (a user error) whose one-line message names the key.
    """
    try:
        # Hydra lets `+key=value` into the schema's nodes (open_dict): merging the plain
        # values into a fresh schema refuses a key it does not declare, by name.
        composed = OmegaConf.to_container(compose_yaml(overrides))
        schema = OmegaConf.structured(MarsConfig)
        return check_config_stages(OmegaConf.to_object(OmegaConf.merge(schema, composed)))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise ConfigError(config_error_message(e)) from e


def parameter_overrides(experiment: str | None = None, **named: float | None) -> list[str]:
    """A flow's named parameters as the overrides a command line would give (`None`: not
    given); they come first, so the flow's free `overrides` can still change anything."""
    unknown = set(named) - set(PARAMETER_KEYS)
    if unknown:
        raise ValueError(f"no config key for the parameters {sorted(unknown)}")
    given = [f"experiment={experiment}"] if experiment else []
    return given + [f"{PARAMETER_KEYS[k]}={v}" for k, v in named.items() if v is not None]


def compose_to_yaml(overrides: list[str] | None = None, part: str = "job") -> str:
    """`--cfg job`: the composed, resolved and validated config (every knob) as YAML; `--cfg
    all` puts Hydra's own settings (as composed, unresolved: no run folder exists) first."""
    job = OmegaConf.to_yaml(OmegaConf.structured(load_config(overrides)))
    if part == "job":
        return job
    hydra = _compose(overrides, with_hydra=True).hydra
    return OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra})) + job
