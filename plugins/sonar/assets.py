"""Finding and loading SONAR weights through fairseq2 asset cards, never hanging on a download.

Whatever way the user named the weights, the result is an ``AssetCard`` handed to the model
family's own hub (``ModelHub.load_model``) and to ``load_tokenizer``: the code path a
downloaded SONAR model takes. Before loading, every file the card names is checked to be
reachable (local file present, or already in fairseq2's download cache, or, when online, the
server answering within a few seconds); otherwise one ``WeightsUnavailableError`` says how to
point at local files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import yaml

from lcm.errors import InputFileError, UserError, WeightsUnavailableError

from .options import SonarModelOptions

OFFLINE_VARIABLES = ("LCM_OFFLINE", "HF_HUB_OFFLINE", "FAIRSEQ2_OFFLINE")
"""Any of these set to a true value means: never try the network."""
PROBE_TIMEOUT_S = 10.0
HOW_TO_POINT = ("point at local files with `checkpoint: PATH` (and `tokenizer: PATH` for text) "
                "in the component's section of the recipe, or at a folder of your own fairseq2 "
                "asset cards with `cards_dir: DIR`")

_private_cards: tempfile.TemporaryDirectory | None = None


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def resolve_card(options: SonarModelOptions, needs_tokenizer: bool) -> Any:
    """The asset card the options name, with every file it points at known to be reachable."""
    dirs = [Path(options.cards_dir)] if options.cards_dir else []
    name = options.card
    if options.checkpoint:
        name = _write_local_card(options)
        dirs.insert(0, Path(_private_cards_dir()))
    elif options.model_config:
        raise UserError("model_config overrides apply to a local `checkpoint`; for a card, put "
                        "them in the card's own model_config field")
    card = _retrieve_card(name, dirs)
    if card is None:
        where = f" in {options.cards_dir} or" if options.cards_dir else ""
        raise WeightsUnavailableError(
            f"no fairseq2 asset card named {name!r}{where} among the installed ones; {HOW_TO_POINT}")
    fields = ("checkpoint", "tokenizer") if needs_tokenizer else ("checkpoint",)
    for field_name in fields:
        _ensure_reachable(card, field_name)
    return card


def load_model(hub_accessor: Callable[[], Any], card: Any, device: Any, dtype: Any,
               dim_of: Callable[[Any], int], options: SonarModelOptions,
               tokenizer: Any = None) -> Any:
    """Load the card's model through its family hub, after checking its concept dimension and
    that ``tokenizer`` (for a text model) yields no token id the model has no embedding for."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from fairseq2.assets import AssetCardError

    hub = hub_accessor()
    try:
        config = hub.get_model_config(card)
    except AssetCardError as exc:
        raise UserError(f"asset card {card.name!r}: {_chain(exc)}") from None
    dim = dim_of(config)
    if dim != options.dim:
        raise UserError(_architecture_problem(options, dim) or
                        f"asset card {card.name!r} describes a {dim}-d model, but the component's "
                        f"`dim` is {options.dim}; set `dim: {dim}` (the concept space must match "
                        f"the model)")
    if tokenizer is not None:
        _check_vocabulary(tokenizer, config.vocab_info.size, options)
    try:
        model = hub.load_model(card, device=device, dtype=dtype)
    except (AssetCardError, RuntimeError) as exc:  # RuntimeError: tensors of other shapes
        problem = _architecture_problem(options, dim)
        if problem:
            raise UserError(problem) from None
        raise InputFileError(_location(card, "checkpoint"), _chain(exc)) from None
    return model.eval()


def _architecture_problem(options: SonarModelOptions, card_dim: int) -> str | None:
    """For a local checkpoint given without ``model_config``, the one line that says so.

    The checkpoint is then read with the base card's architecture (the real 1024-d model), so
    a smaller model fails on its dimension or on its tensor shapes; the fix is to describe the
    checkpoint, not to change ``dim``."""
    if not options.checkpoint or options.model_config:
        return None
    return (f"checkpoint {options.checkpoint}: `model_config` is missing, so it is read with the "
            f"architecture of card {options.card!r} ({card_dim}-d); describe the checkpoint's "
            f"architecture with `model_config: {{model_dim: ..., ...}}` (the fields of sonar's "
            f"model config; a text model's `vocab_info` is a mapping of size, unk_idx, bos_idx, "
            f"eos_idx and pad_idx)")


def _check_vocabulary(tokenizer: Any, model_vocab_size: int, options: SonarModelOptions) -> None:
    """Refuse a tokenizer with more tokens than the model's embedding table.

    A local tokenizer gets one control token per language of the base card; built with fewer
    languages and given without ``tokenizer_langs``, its language tokens fall beyond the
    model's vocabulary, which torch reports at the first sentence as a bare "IndexError:
    index out of range in self"."""
    size = int(tokenizer.vocab_info.size)
    if size <= model_vocab_size:
        return
    if options.tokenizer and not options.tokenizer_langs:
        raise UserError(
            f"tokenizer {options.tokenizer}: with the {options.card!r} card's languages it has "
            f"{size} tokens, but the model's vocabulary has {model_vocab_size}; list the "
            f"languages the tokenizer was built with: `tokenizer_langs: [eng_Latn, ...]`")
    raise UserError(f"the tokenizer has {size} tokens but the model's vocabulary has "
                    f"{model_vocab_size}; `tokenizer_langs` must list exactly the languages the "
                    f"tokenizer was built with, in its order, and `model_config.vocab_info.size` "
                    f"match it")


def load_tokenizer(card: Any) -> Any:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from fairseq2.assets import AssetCardError
    from fairseq2.data.tokenizers import load_tokenizer as fs2_load_tokenizer

    try:
        return fs2_load_tokenizer(card)
    except (AssetCardError, OSError, RuntimeError) as exc:
        raise InputFileError(_location(card, "tokenizer"), _chain(exc)) from None


# --------------------------------------------------------------------------- cards

def _private_cards_dir() -> str:
    """A per-process directory for cards the plugin writes for local files (removed at exit)."""
    global _private_cards
    if _private_cards is None:
        _private_cards = tempfile.TemporaryDirectory(prefix="lcm-sonar-cards-")
    return _private_cards.name


def _write_local_card(options: SonarModelOptions) -> str:
    """Write a card for ``checkpoint``/``tokenizer`` that inherits the rest from ``card``."""
    entry: dict[str, Any] = {"checkpoint": Path(options.checkpoint).resolve().as_uri()}
    if options.tokenizer:
        entry["tokenizer"] = Path(options.tokenizer).resolve().as_uri()
    if options.tokenizer_langs:
        langs = [str(lang) for lang in options.tokenizer_langs]
        default = "eng_Latn" if "eng_Latn" in langs else langs[0]
        entry["tokenizer_config"] = {"_set_": {"langs": langs, "default_lang": default}}
    if options.model_config:
        entry["model_config"] = _plain(options.model_config)
    digest = hashlib.sha1(json.dumps([options.card, entry], sort_keys=True).encode()).hexdigest()
    name = f"lcm_local_{digest[:16]}"
    card = {"name": name, "base": options.card, **entry} if options.card else {"name": name, **entry}
    Path(_private_cards_dir(), f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return name


def _plain(value: Any) -> Any:
    """Recipe values (OmegaConf containers) as plain dicts and lists, which cards require."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _retrieve_card(name: str, dirs: list[Path]) -> Any:
    """``name`` from ``dirs`` (first match wins) or from fairseq2's store; bases likewise."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from fairseq2.assets import AssetCard, AssetStore, FileAssetMetadataLoader
    from fairseq2.runtime.dependency import get_dependency_resolver

    resolver = get_dependency_resolver()
    loader = resolver.resolve(FileAssetMetadataLoader)
    try:
        providers = [loader.load(d) for d in dirs]
    except Exception as exc:  # fairseq2 raises AssetMetadataError for a malformed YAML card
        raise UserError(f"cannot read asset cards: {_chain(exc)}") from None
    store = resolver.resolve(AssetStore)

    def retrieve(card_name: str) -> Any:
        for provider in providers:
            metadata = provider.maybe_get_metadata(f"{card_name}@")
            if metadata is not None:
                base = metadata.get("base")
                base_card = retrieve(base) if isinstance(base, str) else None
                if isinstance(base, str) and base_card is None:
                    raise WeightsUnavailableError(
                        f"asset card {card_name!r} names base card {base!r}, which does not exist")
                return AssetCard(card_name, metadata, base_card)
        return store.maybe_retrieve_card(card_name)

    return retrieve(name)


# --------------------------------------------------------------------------- reachability

def _ensure_reachable(card: Any, field_name: str) -> None:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from fairseq2.assets import AssetCardError

    field = card.maybe_get_field(field_name)
    if field is None:
        raise WeightsUnavailableError(f"asset card {card.name!r} has no {field_name}; {HOW_TO_POINT}")
    try:
        uri = field.as_uri()
    except AssetCardError as exc:
        raise UserError(f"asset card {card.name!r}: {_chain(exc)}") from None
    if uri.scheme == "file":
        local = uri.to_path()
        if not local.exists():
            raise WeightsUnavailableError(
                f"{local}, the {field_name} of asset card {card.name!r}, does not exist; {HOW_TO_POINT}")
        return
    if _cached(uri, field_name):
        return
    if offline():
        raise WeightsUnavailableError(
            f"the {field_name} of asset card {card.name!r} ({uri}) is not downloaded and the "
            f"network is off ({'/'.join(OFFLINE_VARIABLES)} is set); {HOW_TO_POINT}")
    if uri.scheme in ("http", "https"):
        problem = _probe(str(uri))
        if problem:
            raise WeightsUnavailableError(
                f"cannot download the {field_name} of asset card {card.name!r} from {uri} "
                f"({problem}); {HOW_TO_POINT}")


def _cached(uri: Any, field_name: str) -> bool:
    """Whether fairseq2 already holds ``uri`` in its download cache."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from fairseq2.assets import AssetDownloadError, AssetDownloadManager
    from fairseq2.runtime.dependency import get_dependency_resolver

    manager = get_dependency_resolver().resolve(AssetDownloadManager)
    if uri.scheme not in manager.supported_schemes:
        return False
    download = manager.download_tokenizer if field_name == "tokenizer" else manager.download_model
    try:
        download(uri, local_only=True)
    except AssetDownloadError:
        return False
    return True


def _probe(url: str) -> str | None:
    """None if the server answers a HEAD request in time; else what went wrong."""
    try:
        with urlopen(Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S):
            return None
    except HTTPError as exc:
        return f"HTTP {exc.code}"
    except (URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def _location(card: Any, field_name: str) -> str:
    field = card.maybe_get_field(field_name)
    return f"{field.value}" if field is not None else f"asset card {card.name!r}"


def _chain(exc: BaseException) -> str:
    """The first line of an error and of its causes: fairseq2 puts the useful part below."""
    parts = []
    while exc is not None and len(parts) < 3:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if line not in parts:
            parts.append(line)
        exc = exc.__cause__
    return ": ".join(parts)
