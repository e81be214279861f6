"""Inference checkpoints: one directory a user can copy, inspect and load anywhere.

    model.safetensors     the weights (safetensors: no pickle, loads lazily and safely)
    config.json           architecture, resolved trunk config, head spec, space, lcm version,
                          and the plugin package of each component it names ("plugins")
    concept_space.json    the space, so recipe validation can check encoder/decoder pairs
    normalizer.json       the normaliser the model was trained with

Saving writes a temporary sibling directory and renames it into place, so a crash never
leaves a half-written checkpoint where a reader could find it.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from lcm import __version__
from lcm.components import ComponentSpec, resolve
from lcm.data.normalizer import RobustScaler
from lcm.errors import InputFileError, PluginNotInstalledError, UnknownComponentError, UserError
from lcm.interfaces import ConceptSpace
from lcm.model.config import TransformerConfig
from lcm.model.lcm import ConceptModel, build_head
from lcm.outputs import replace_directory, staging_directory
from lcm.plugin_origin import distribution_of
from lcm.spaces import write_space
from lcm.torch_options import torch_dtype

if TYPE_CHECKING:
    from lcm.registry import Registry

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A checkpoint loaded for inference."""

    model: Any  # lcm.model.lcm.ConceptModel, in eval mode
    normalizer: Any  # lcm.data.normalizer.RobustScaler
    space: Any  # lcm.interfaces.ConceptSpace
    meta: dict[str, Any]  # the whole config.json (incl. ``extra``)


def save_checkpoint(directory: str | Path, model: Any, normalizer: Any,
                    extra: dict[str, Any] | None = None, dtype: str = "fp32") -> Path:
    """Write ``model`` (a ConceptModel) and ``normalizer`` to ``directory``, atomically.

    An existing checkpoint at ``directory`` is replaced only once the new one is complete.
    ``extra`` (e.g. the training step) is stored under ``"extra"`` in config.json. ``dtype``:
    learned weights are stored in it (fp16 halves a shipped file; buffers such as noise
    schedules stay as they are); loading casts them back to the model's fp32.
    """
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from safetensors.torch import save_file

    if normalizer.space != model.space:
        raise ValueError(f"normaliser space {normalizer.space} differs from the model's {model.space}")
    target = Path(directory)
    staging = staging_directory(target)
    try:
        stored = torch_dtype(dtype)
        learned = {name for name, _ in model.named_parameters()}  # buffers (schedules) keep theirs
        state = {k: v.detach().to("cpu", stored if k in learned else v.dtype).contiguous()
                 for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "lcm"})
        meta = {"format_version": FORMAT_VERSION, "lcm_version": __version__,
                **model.describe(), "plugins": component_origins(model.head),
                "extra": dict(extra or {})}
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        write_space(staging, model.space)
        normalizer.save(staging)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def component_origins(head: Any) -> dict[str, str]:
    """``{"kind:name": distribution}`` of the head and of every component its options name
    (a decoder it learned through), so a loader can say which plugin package is missing."""
    found: dict[str, str] = {}

    def visit(cls: type, options: Any) -> None:
        package = distribution_of(cls)
        if package:
            found[f"{cls.kind}:{cls.name}"] = package
        stack = [options]
        while stack:
            value = stack.pop()
            if isinstance(value, ComponentSpec):
                visit(value.cls, value.options)
            elif is_dataclass(value) and not isinstance(value, type):
                stack.extend(getattr(value, f.name) for f in fields(value))

    visit(type(head), head.config)
    return found


def checkpoint_head(meta: Mapping[str, Any], registry: "Registry", directory: str | Path,
                    sampling: Mapping[str, Any] | None = None) -> Any:
    """The head section of a checkpoint resolved against ``registry`` (a ComponentSpec), with
    ``sampling`` laid over it; a component whose plugin is not installed is named with the
    package the checkpoint recorded for it (checkpoints from before that record say only
    that the name is unknown)."""
    try:
        head_cls = registry.get("head", str(meta["head"].get("name"))).cls
        return resolve(registry, "head", with_sampling(meta["head"], sampling or {}, head_cls))
    except UnknownComponentError as exc:
        package = (meta.get("plugins") or {}).get(f"{exc.kind}:{exc.name}")
        if package is None or any(f.distribution == package for f in registry.failures):
            raise  # no record, or installed but broken: the error names the failed package
        raise PluginNotInstalledError(exc.kind, exc.name, package, str(directory)) from None


def read_weights(directory: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The tensors of a checkpoint's weights file, by name (all finite)."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from lcm.model.weights import read_safetensors

    return read_safetensors(Path(directory) / WEIGHTS_FILE, device)


def with_sampling(head: Mapping[str, Any], sampling: Mapping[str, Any], head_cls: type) -> dict:
    """A checkpoint's ``head`` options with ``sampling`` laid over them; a key the head does
    not list in ``sampling_options`` is refused (it would change what the model computes)."""
    changed = _dotted(sampling)
    allowed = getattr(head_cls, "sampling_options", ())
    refused = sorted(set(changed) - set(allowed))
    if refused:
        raise UserError(f"sampling: {', '.join(refused)} cannot change at generation for head "
                        f"{head_cls.name!r} (it can: {', '.join(allowed) or 'nothing'})")
    merged = json.loads(json.dumps(dict(head)))  # a deep copy
    for key, value in changed.items():
        *parents, last = key.split(".")
        node = merged
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return merged


def _dotted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint, checked for the fields loading needs."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise InputFileError(directory, "checkpoint directory not found")
    if not path.is_file():
        raise InputFileError(path, "not a checkpoint: config.json is missing")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON: {exc}") from None
    missing = [k for k in ("transformer", "head", "space") if k not in meta]
    if missing:
        raise InputFileError(path, f"missing field(s): {', '.join(missing)}")
    return meta


def load_checkpoint(directory: str | Path, registry: "Registry", device: str = "cpu",
                    sampling: Mapping[str, Any] | None = None) -> LoadedModel:
    """Rebuild the model of a checkpoint directory and load its weights and normaliser.

    The head is rebuilt from the options the checkpoint stores (every one of them, so a model
    generates the same whatever the code's defaults become), found by name in ``registry``;
    ``sampling`` changes only options the head lists in ``sampling_options`` (DDIM steps,
    guidance, temperature, ...), e.g. ``{"diffusion": {"inference_steps": 10}}``.
    """
    directory = Path(directory)
    meta = read_checkpoint_meta(directory)
    config_path = directory / CONFIG_FILE
    try:
        config = TransformerConfig(**meta["transformer"])
        space = ConceptSpace.from_record(meta["space"])
    except (TypeError, KeyError, ValueError) as exc:
        raise InputFileError(config_path, f"malformed model description: {exc}") from None
    head = checkpoint_head(meta, registry, directory, sampling)
    model = ConceptModel(config, build_head(head, config, space.dim), space,
                         arch=meta.get("arch", "custom"))
    weights = directory / WEIGHTS_FILE
    state = read_weights(directory, device)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise InputFileError(weights, f"weights do not fit the model described in {CONFIG_FILE}: "
                             f"{str(exc).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise InputFileError(weights, f"weights do not fit the model described in {CONFIG_FILE}: "
                             f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    normalizer = RobustScaler.load(directory)
    if normalizer.space != space:
        raise InputFileError(directory / "normalizer.json",
                             f"normaliser space {normalizer.space} differs from the model's {space}")
    model.head.bind_normalizer(normalizer)
    model.to(device).eval()
    return LoadedModel(model, normalizer, space, meta)
