"""A neuron's activation read with the model's own modules only: no ft_artifacts code.

`[CLS] e [SEP]` in word-embedding space goes through `model.embeddings(inputs_embeds=...)` (position and
token-type embeddings, LayerNorm), then the model's encoder layers; a forward hook on
`encoder.layer[L-1].output.dense` reads position 1, coordinate N (layers 1..L as in `L3.N7`).
"""

from __future__ import annotations

import re

import numpy as np
import torch


def parse(name: str) -> tuple[int, int]:
    match = re.fullmatch(r"L(\d+)\.N(\d+)", name)
    assert match, name
    return int(match[1]), int(match[2])


def load_bert(folder: str, dtype=torch.float32):
    from transformers import AutoTokenizer, BertModel

    model = BertModel.from_pretrained(folder, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(folder)


@torch.no_grad()
def dense_outputs(model, pre_ln: np.ndarray, cls_id: int, sep_id: int) -> list[torch.Tensor]:
    """pre_ln [n, h] word-embedding vectors -> per layer, `output.dense` at position 1: [n, h] each."""
    word = model.embeddings.word_embeddings.weight
    e = torch.as_tensor(np.asarray(pre_ln), dtype=word.dtype).reshape(-1, 1, word.shape[1])
    n = e.shape[0]
    seq = torch.cat([word[cls_id].expand(n, 1, -1), e, word[sep_id].expand(n, 1, -1)], dim=1)
    hidden = model.embeddings(inputs_embeds=seq)
    captured: list[torch.Tensor] = []
    hooks = [layer.output.dense.register_forward_hook(lambda _m, _i, out: captured.append(out[:, 1].clone()))
             for layer in model.encoder.layer]
    try:
        for layer in model.encoder.layer:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
    finally:
        for h in hooks:
            h.remove()
    return captured


def activation(model, pre_ln: np.ndarray, neurons: list[str], cls_id: int, sep_id: int) -> np.ndarray:
    """Per row of pre_ln [n, h]: the mean activation of `neurons` (one neuron: its activation)."""
    return activations(model, pre_ln, [neurons] * len(pre_ln), cls_id, sep_id)


def activations(model, pre_ln: np.ndarray, neurons: list[list[str]], cls_id: int, sep_id: int,
                batch: int = 256) -> np.ndarray:
    """Row i of pre_ln [n, h]: the mean activation of the neurons named in neurons[i]."""
    out = []
    for start in range(0, len(pre_ln), batch):
        acts = torch.cat(dense_outputs(model, pre_ln[start:start + batch], cls_id, sep_id), dim=1).double()
        hidden = acts.shape[1] // len(model.encoder.layer)
        for i, names in enumerate(neurons[start:start + batch]):
            cols = [(layer - 1) * hidden + index for layer, index in map(parse, names)]
            out.append(float(acts[i, cols].mean()))
    return np.array(out)


@torch.no_grad()
def scan(model, cls_id: int, sep_id: int, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Every token alone as `[CLS] w [SEP]`: analysis vectors [V, h] (embedding output at position 1)
    and activations [V, L*H] at position 1 (layer-major: column (L-1)*H + N)."""
    word = model.embeddings.word_embeddings.weight
    vectors, acts = [], []
    for start in range(0, word.shape[0], batch):
        ids = torch.arange(start, min(start + batch, word.shape[0]))
        seq = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
        vectors.append(model.embeddings(input_ids=seq)[:, 1].double().numpy())
        acts.append(torch.cat(dense_outputs(model, word[ids].numpy(), cls_id, sep_id), dim=1).double().numpy())
    return np.concatenate(vectors), np.concatenate(acts)
