"""Trained students for the agent: a local folder or an MLflow registered-model URI.

A student folder is either a LoRA adapter (`adapter_config.json`: applied onto the configured
base) or a whole fine-tuned model (`config.json` + processor files, what `train.method=full`
saves: loaded instead of the configured base). Both come through `student.adapter`, as a
folder or as `models:/<name>@<alias>` / `models:/<name>/<version>`, which the student registry
(`mars_core/infra/registry.py`) resolves to the version's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mars_core.infra.errors import AdapterNotFoundError, UserInputError, one_line
from mars_core.infra.registry import (
    CHAMPION,
    MODELS_SCHEME,
    alias_version,
    registered_folder,
    registry_uri,
    version_uri,
)

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
# `student.adapter` values that are not a folder or a model URI.
SERVE_CHAMPION = "auto"
NO_ADAPTER = "none"
ACCEPTED = (
    f"a LoRA adapter folder (holding {ADAPTER_CONFIG}), a fine-tuned model folder (holding "
    f"{MODEL_CONFIG}) or models:/<name>@<alias> "
    "(or models:/<name>/<version>) from the MLflow model registry"
)


class IncompatibleAdapterError(UserInputError):
    """An adapter that does not fit the configured base model."""


def resolve_adapter(spec: str) -> Path:
    """The local folder of an adapter given as a folder path or an MLflow model URI."""
    folder = registered_folder(spec, ACCEPTED) if spec.startswith(MODELS_SCHEME) else Path(spec)
    if not folder.is_dir():
        raise AdapterNotFoundError(
            f"adapter {spec!r}: no folder at {str(folder)!r}; give {ACCEPTED}"
        )
    if not (folder / ADAPTER_CONFIG).is_file() and not is_whole_model(folder):
        raise AdapterNotFoundError(
            f"adapter {spec!r}: {str(folder)!r} holds neither {ADAPTER_CONFIG} nor "
            f"{MODEL_CONFIG}; give {ACCEPTED}"
        )
    return folder


def is_whole_model(folder: Path) -> bool:
    """A fully fine-tuned student (loaded as the base) rather than a LoRA adapter."""
    return (folder / MODEL_CONFIG).is_file() and not (folder / ADAPTER_CONFIG).is_file()


def apply_adapter(model: Any, spec: str, *, merge: bool) -> Any:
    """Load the adapter onto `model`; merged into the weights unless the base is quantized.

    Merging removes the LoRA detour from every forward pass; a 4-bit base cannot be merged
    exactly, so it keeps the PEFT wrapper.
    """
    from peft import PeftModel

    folder = resolve_adapter(spec)
    try:
        wrapped = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:
        raise IncompatibleAdapterError(
            f"adapter {spec!r} does not fit the base model ({one_line(e)}); give an adapter "
            "trained on the configured student"
        ) from e
    wrapped.eval()
    return wrapped.merge_and_unload() if merge else wrapped


def serving_adapter(spec: str | None, registered_model: str) -> str | None:
    """What `student.adapter` means for serving: `auto` is the registry's champion when it has
    one (else the base student), `none` (or null) the base student, anything else itself."""
    if spec is None or spec == NO_ADAPTER:
        return None
    if spec != SERVE_CHAMPION:
        return spec
    champion = alias_version(registered_model, CHAMPION)
    return None if champion is None else registry_uri(registered_model, CHAMPION)


def champion_pin(spec: str | None, registered_model: str) -> tuple[str | None, int | None]:
    """`serving_adapter` pinned for a service that follows the champion: `auto` becomes
    `models:/<name>/<version>` of the version the alias points at now (the alias may move
    while the weights load; a version cannot), with that version; else (spec, None)."""
    if spec != SERVE_CHAMPION:
        return serving_adapter(spec, registered_model), None
    champion = alias_version(registered_model, CHAMPION)
    return (None, None) if champion is None else (version_uri(registered_model, champion), champion)
