"""A loaded transformers model in, its family's adapter out: where the embedding matrix and each layer's
neuron linear are, how one token is framed, and a forward from word embeddings to the neurons.

The paper's "neuron" is kept for every family: a coordinate of the output of each layer's last
feed-forward linear, before dropout, the residual and normalization.

| family     | model_type                    | embedding matrix          | neuron linear (per layer)     |
|------------|-------------------------------|---------------------------|-------------------------------|
| bert       | bert                          | embeddings.word_embeddings | encoder.layer[i].output.dense |
| roberta    | roberta, xlm-roberta          | embeddings.word_embeddings | encoder.layer[i].output.dense |
| distilbert | distilbert                    | embeddings.word_embeddings | transformer.layer[i].ffn.lin2 |
| electra    | electra                       | embeddings.word_embeddings | encoder.layer[i].output.dense |
| albert     | albert                        | embeddings.word_embeddings | shared ffn_output, per call   |
| deberta-v2 | deberta-v2                    | embeddings.word_embeddings | encoder.layer[i].output.dense |
| modernbert | modernbert                    | embeddings.tok_embeddings  | layers[i].mlp.Wo              |
| gpt2       | gpt2                          | wte                        | h[i].mlp.c_proj               |
| llama      | llama, mistral, qwen2         | embed_tokens               | layers[i].mlp.down_proj       |

Detection: the config's `model_type` picks the family, then the family's module paths must exist
(a model that names a family but lacks its layout is refused, naming what is missing).

Framing: encoders put the tokenizer's own [CLS]/[SEP] (`<s>`/`</s>`) around the optimized tokens;
decoders put BOS before them and nothing after, whatever the tokenizer adds (GPT-2 adds nothing).
The optimized tokens start at position 1 in every family.

Forward: BERT keeps the engine's own layer-by-layer path (`hooks.run_layers`: rows drop out once
their deepest target layer is done). Every other family runs the model's own forward on
`inputs_embeds` (so positions with RoBERTa's offset, token types, embedding projections and scales
are the model's own code), stopped right after the deepest layer any row needs: exact, but without
the shrinking batch. The analysis space is the input of the first layer (the embedding output,
after any projection), captured by a pre-hook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ModelLoadError


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    embedding: str  # dotted path of the token embedding module (an nn.Embedding)
    layers: str  # dotted path of the layer list (ALBERT: the layer groups)
    neuron: str  # dotted path, inside one layer (ALBERT: inside one group's layer), of the neuron linear
    decoder: bool = False
    layerwise: bool = False  # True: the engine's layer-by-layer path (BERT layout only)
    position_offset: int = 0  # position ids start here (RoBERTa: padding_idx + 1)

    # --- layout ----------------------------------------------------------------------------------
    def embedding_module(self, model):
        return _get(model, self.embedding)

    def layer_list(self, model) -> list:
        return list(_get(model, self.layers))

    def neuron_modules(self, model) -> list:
        """The distinct neuron linears, in the order the forward calls them (ALBERT: one per group)."""
        if self.name == "albert":
            return [group.albert_layers[0].ffn_output for group in self.layer_list(model)]
        return [_get(layer, self.neuron) for layer in self.layer_list(model)]

    def num_layers(self, model) -> int:
        if self.name == "albert":
            return int(model.config.num_hidden_layers)
        return len(self.layer_list(model))

    def hidden_size(self, model) -> int:
        return int(model.config.hidden_size)

    def max_positions(self, model) -> int:
        if self.layerwise:
            return model.embeddings.position_embeddings.num_embeddings
        cfg = model.config
        limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings")
        return int(limit) - self.position_offset

    def frame_slots(self) -> int:
        """How many frame tokens surround the optimized ones: [CLS] and [SEP], or BOS alone."""
        return 1 if self.decoder else 2

    def check(self, model, model_id: str) -> None:
        """The family's module paths exist; one-line refusal naming what is missing otherwise."""
        missing = [p for p in (self.embedding, self.layers) if _get(model, p) is None]
        if not missing:
            try:
                neurons = self.neuron_modules(model)
            except (AttributeError, IndexError, TypeError):
                neurons = [None]
            if any(m is None for m in neurons) or not neurons:
                missing.append(f"{self.layers}[i].{self.neuron}")
        if missing:
            raise ModelLoadError(f"{model_id} ({type(model).__name__}, model_type {self.name}) lacks the "
                                 f"{self.name} layout: missing {', '.join(missing)}")
        if self.name == "albert" and int(getattr(model.config, "inner_group_num", 1)) != 1:
            raise ModelLoadError(f"{model_id}: ALBERT with inner_group_num {model.config.inner_group_num} is not "
                                 "supported (one layer per group, inner_group_num 1, is)")

    # --- per-token details -----------------------------------------------------------------------
    def scan_position_ids(self, token_ids: torch.Tensor, prefix: tuple, suffix: tuple) -> torch.Tensor | None:
        """Position ids the model itself gives `prefix w suffix` for each token id [b] ([b, t]); None
        where they do not depend on the token (all but RoBERTa, whose padding token takes no position)."""
        if self.name != "roberta":
            return None
        pad = self.position_offset - 1
        b = token_ids.shape[0]
        ids = torch.cat([token_ids.new_tensor(prefix).expand(b, -1), token_ids.view(b, 1),
                         token_ids.new_tensor(suffix).expand(b, -1)], dim=1)
        mask = ids.ne(pad).long()
        return torch.cumsum(mask, dim=1) * mask + pad


FAMILIES = (
    Family("bert", ("bert",), "embeddings.word_embeddings", "encoder.layer", "output.dense", layerwise=True),
    Family("roberta", ("roberta", "xlm-roberta"), "embeddings.word_embeddings", "encoder.layer", "output.dense"),
    Family("distilbert", ("distilbert",), "embeddings.word_embeddings", "transformer.layer", "ffn.lin2"),
    Family("electra", ("electra",), "embeddings.word_embeddings", "encoder.layer", "output.dense"),
    Family("albert", ("albert",), "embeddings.word_embeddings", "encoder.albert_layer_groups",
           "albert_layers.0.ffn_output"),
    Family("deberta-v2", ("deberta-v2",), "embeddings.word_embeddings", "encoder.layer", "output.dense"),
    Family("modernbert", ("modernbert",), "embeddings.tok_embeddings", "layers", "mlp.Wo"),
    Family("gpt2", ("gpt2",), "wte", "h", "mlp.c_proj", decoder=True),
    Family("llama", ("llama", "mistral", "qwen2"), "embed_tokens", "layers", "mlp.down_proj", decoder=True),
)
BERT = FAMILIES[0]


def supported() -> str:
    return ", ".join(f"{f.name} ({'/'.join(f.model_types)})" if f.model_types != (f.name,) else f.name
                     for f in FAMILIES)


def detect(model, model_id: str) -> Family:
    """The family of a loaded model, by its config's model_type; refused in one line otherwise."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            if family.name == "roberta":  # positions start after the padding index
                pad = getattr(model.config, "pad_token_id", None)
                family = _with_offset(family, (pad if pad is not None else 1) + 1)
            return family
    raise ModelLoadError(f"{model_id} is a {type(model).__name__} (model_type {model_type!r}), which ft-artifacts "
                         f"does not support; supported families: {supported()}")


def _with_offset(family: Family, offset: int) -> Family:
    from dataclasses import replace

    return replace(family, position_offset=offset)


def _get(obj, dotted: str):
    for part in dotted.split("."):
        if part.isdigit():
            try:
                obj = obj[int(part)]
            except (IndexError, TypeError, KeyError):
                return None
        else:
            obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class StopForward(Exception):
    """Raised from a hook once every activation a forward needs is captured."""


class Captured(list):
    """Per-layer activations at the read position, appended by the neuron hooks in call order;
    `analysis`: the first layer's input [b, t, h] (non-layerwise families); `stop_at`: how many
    layers the current forward needs (None: run to the end)."""

    analysis: torch.Tensor | None = None
    stop_at: int | None = None


def register(lm, captured: Captured, position: int) -> list:
    """Neuron hooks (and, off the BERT path, the analysis pre-hook); returns the handles."""
    family = lm.family

    def hook(_module, _inputs, output):
        captured.append(output[:, position])
        if captured.stop_at is not None and len(captured) >= captured.stop_at:
            raise StopForward

    handles = [m.register_forward_hook(hook) for m in family.neuron_modules(lm.model)]
    if not family.layerwise:
        def pre_hook(_module, args, kwargs):
            if captured.analysis is None:
                captured.analysis = args[0] if args else kwargs["hidden_states"]
                if captured.stop_at == 0:
                    raise StopForward

        first = family.layer_list(lm.model)[0]
        handles.append(first.register_forward_pre_hook(pre_hook, with_kwargs=True))
    return handles


def model_forward(lm, seq_embeds: torch.Tensor, depth: int, captured: Captured,
                  position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The model's own forward on `inputs_embeds` [b, t, e], stopped after layer `depth` (0: after the
    embedding). Returns (first-layer input [b, t, h], acts per layer 1..depth, each [b, h])."""
    captured.clear()
    captured.analysis, captured.stop_at = None, depth
    kwargs = {"inputs_embeds": seq_embeds}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if lm.family.decoder:
        kwargs["use_cache"] = False
    try:
        lm.model(**kwargs)
    except StopForward:
        pass
    finally:
        captured.stop_at = None
    return captured.analysis, list(captured)
