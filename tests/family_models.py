"""Tiny random-init models of every supported family, saved to a folder with a tokenizer made by the
`tokenizers` library, and each family's neuron linear named independently of ft_artifacts.families
(the module paths of DESIGN.md section 6), so the exactness tests compare against the model's own code."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("crowd house river king money green dog church summer army bridge paper light school doctor island "
         "train garden music water the a of and to in is it was for on with as at by from that this be or").split()
ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's order: <pad> is id 1
GPT2_SPECIALS = ["<|endoftext|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]
H, LAYERS = 16, 3


def _vocab(specials, words=WORDS):
    return specials + [w for w in dict.fromkeys(words) if w not in specials]


def _save_tokenizer(folder: Path, specials: list[str], words=WORDS, **names) -> int:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab(specials, words)
    unk = names.get("unk_token", specials[0])
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, **names).save_pretrained(folder)
    return len(vocab)


def _encoder_tokens(folder, words):
    return _save_tokenizer(folder, ENCODER_SPECIALS, words, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                           sep_token="[SEP]", mask_token="[MASK]")


def _roberta_tokens(folder, words):
    return _save_tokenizer(folder, ROBERTA_SPECIALS, words, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")


def _config(family: str, vocab: int, hidden: int = H):
    import transformers as t

    common = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=LAYERS, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=20, initializer_range=0.2)
    if family in ("roberta", "xlm-roberta"):
        cls = t.RobertaConfig if family == "roberta" else t.XLMRobertaConfig
        return cls(**common, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    if family == "distilbert":
        return t.DistilBertConfig(vocab_size=vocab, dim=hidden, n_layers=LAYERS, n_heads=2, hidden_dim=32,
                                  max_position_embeddings=20, initializer_range=0.2, pad_token_id=0)
    if family == "electra":
        return t.ElectraConfig(**common, embedding_size=hidden // 2)
    if family == "albert":
        return t.AlbertConfig(**common, embedding_size=hidden // 2, num_hidden_groups=1, inner_group_num=1, pad_token_id=0)
    if family == "deberta-v2":
        return t.DebertaV2Config(**common, relative_attention=True, position_biased_input=False,
                                 pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_buckets=8,
                                 norm_rel_ebd="layer_norm", share_att_key=True, conv_kernel_size=3, pad_token_id=0)
    if family == "modernbert":
        return t.ModernBertConfig(**common, global_attn_every_n_layers=2, local_attention=4, pad_token_id=0,
                                  cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3)
    if family == "gpt2":
        return t.GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=LAYERS, n_head=2, n_positions=20,
                            initializer_range=0.2, bos_token_id=0, eos_token_id=0)
    if family in ("llama", "mistral", "qwen2"):
        cls = {"llama": t.LlamaConfig, "mistral": t.MistralConfig, "qwen2": t.Qwen2Config}[family]
        extra = dict(num_key_value_heads=1, bos_token_id=1, eos_token_id=2, pad_token_id=None)
        return cls(**common, **extra)
    raise KeyError(family)


FAMILY_OF = {"roberta": "roberta", "xlm-roberta": "roberta", "distilbert": "distilbert", "electra": "electra",
             "albert": "albert", "deberta-v2": "deberta-v2", "modernbert": "modernbert", "gpt2": "gpt2",
             "llama": "llama", "mistral": "llama", "qwen2": "llama"}
DECODERS = {"gpt2", "llama", "mistral", "qwen2"}


def save_tiny(family: str, folder: Path, seed: int = 0, hidden: int = H, words=WORDS) -> Path:
    """A tiny random-init model of `family` (a model_type) with its tokenizer over `words`, saved to `folder`."""
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    if family in ("roberta", "xlm-roberta"):
        vocab = _roberta_tokens(folder, words)
    elif family == "gpt2":
        vocab = _save_tokenizer(folder, GPT2_SPECIALS, words, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                unk_token="<|endoftext|>")
    elif family in DECODERS:
        vocab = _save_tokenizer(folder, LLAMA_SPECIALS, words, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    else:
        vocab = _encoder_tokens(folder, words)
    torch.manual_seed(seed)
    model = AutoModel.from_config(_config(family, vocab, hidden))
    model.save_pretrained(folder)
    return folder


def neuron_modules(family: str, model) -> list:
    """Each family's last feed-forward linear, one entry per layer call (ALBERT: the shared module)."""
    if family == "albert":
        return [model.encoder.albert_layer_groups[0].albert_layers[0].ffn_output]
    if family == "distilbert":
        return [layer.ffn.lin2 for layer in model.transformer.layer]
    if family == "modernbert":
        return [layer.mlp.Wo for layer in model.layers]
    if family == "gpt2":
        return [block.mlp.c_proj for block in model.h]
    if family in ("llama", "mistral", "qwen2"):
        return [layer.mlp.down_proj for layer in model.layers]
    return [layer.output.dense for layer in model.encoder.layer]


def own_forward(family: str, model, ids: torch.Tensor, position: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own forward on token ids [b, t]: the neuron activations at `position`, every layer
    in call order, [b, L*h], and the first hidden state (the embedding output) at `position` [b, h]."""
    captured = []
    hook = lambda _m, _i, out: captured.append(out[:, position])  # noqa: E731
    handles = [m.register_forward_hook(hook) for m in neuron_modules(family, model)]
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(captured, dim=-1), out.hidden_states[0][:, position]
