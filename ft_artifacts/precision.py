"""A precision mode name and a device in, the context the optimizer's steps run under out; plus the
fidelity of a mode against fp32 and the rule that picks the GPU default from measured fidelity.

Modes (whatever the mode, the final activation is re-evaluated in float32 by `optimize`):
- `fp32`: IEEE float32 everywhere.
- `tf32`: float32 tensors; on CUDA, matrix products run on tensor cores in TF32 (10-bit mantissa).
  `torch.backends.cuda.matmul.allow_tf32` and `torch.backends.cudnn.allow_tf32` are set only while
  the steps run and restored afterwards. On CPU those flags change nothing: tf32 computes exactly fp32.
- `bf16`: `torch.autocast` to bfloat16 around each step's forward pass; the iterate and the
  preconditioned update stay float32.

Importing this module does not import torch (the CLI reads PRECISIONS for its --help).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import asdict, dataclass
from typing import Iterator, Mapping

from .errors import ObjectiveError

PRECISIONS = ("fp32", "tf32", "bf16")
CPU_DEFAULT = "fp32"  # tf32 is exactly fp32 on CPU; bf16 stays opt-in on CPU (see benchmarks/RESULTS.md)
# NOT YET MEASURED ON A GPU: stays fp32 until benchmarks/gpu_check.sh has recorded per-mode speed and
# fidelity on an H100/H200 (benchmarks/RESULTS.md); then set it to `choose_default(...)` of those results.
GPU_DEFAULT = "fp32"
# Eligibility of a faster mode as the GPU default (issue 9): its mean final activation is at least 98%
# of fp32's, and its 10 nearest tokens share at least 8 of 10 with fp32's, on average over rows.
MIN_ACTIVATION_RATIO = 0.98
MIN_TOP10_OVERLAP = 0.8

_preferred: contextvars.ContextVar[str | None] = contextvars.ContextVar("ft_artifacts_precision", default=None)


def check(mode: str) -> str:
    if mode not in PRECISIONS:
        raise ObjectiveError(f"unknown precision {mode!r}; choose one of {', '.join(PRECISIONS)}")
    return mode


def _device_type(device) -> str:
    """"cuda" for torch.device("cuda:1") or "cuda:1"; "cpu" for "cpu"."""
    return getattr(device, "type", None) or str(device).split(":")[0]


def default_precision(device) -> str:
    """The mode `optimize` uses when none is given: the preferred one set by `preferred(...)`, else
    GPU_DEFAULT on CUDA and CPU_DEFAULT elsewhere."""
    chosen = _preferred.get()
    if chosen is not None:
        return chosen
    return GPU_DEFAULT if _device_type(device) == "cuda" else CPU_DEFAULT


@contextlib.contextmanager
def preferred(mode: str | None) -> Iterator[None]:
    """Within the block, `optimize` calls that name no precision use `mode` (None: the device default).
    Only the choice is scoped here; the tf32 flags are still set only inside each optimization."""
    token = _preferred.set(None if mode is None else check(mode))
    try:
        yield
    finally:
        _preferred.reset(token)


def autocast_dtype(mode: str):
    import torch

    return torch.bfloat16 if check(mode) == "bf16" else None


@contextlib.contextmanager
def tf32_flags(enabled: bool, device) -> Iterator[None]:
    """Set the CUDA TF32 flags for the block and restore them after, also on error; a no-op off CUDA."""
    import torch

    if _device_type(device) != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def step_context(mode: str, device, dtype=None):
    """(flags context for the whole step loop, autocast context for each forward) of a mode.

    fp32 also turns TF32 off on CUDA for the loop, so fp32 means IEEE float32 whatever the caller's
    global flags say. A float64 model is never autocast (bf16 then only applies its flags: none).
    """
    import torch

    check(mode)
    flags = tf32_flags(mode == "tf32", device)
    cast = autocast_dtype(mode)
    if cast is None or dtype == torch.float64:
        return flags, contextlib.nullcontext()
    return flags, torch.autocast(_device_type(device), dtype=cast)


@dataclass
class Fidelity:
    """One mode against fp32, same objectives, seeds and steps."""

    mode: str
    activation_ratio: float  # mean final activation of the mode / mean final activation in fp32
    top10_overlap: float  # mean over rows of |nearest10(mode) & nearest10(fp32)| / 10
    max_rel_diff: float  # largest per-row |a_mode - a_fp32| / max(|a_fp32|, 1e-12)
    rows: int

    @property
    def eligible(self) -> bool:
        return self.activation_ratio >= MIN_ACTIVATION_RATIO and self.top10_overlap >= MIN_TOP10_OVERLAP

    def as_dict(self) -> dict:
        return {**asdict(self), "eligible": self.eligible}


def vocabulary_keys(lm, chunk: int = 4096):
    """Every token's analysis-space vector [V, h] (float32 CPU): `[CLS] w [SEP]` through the embedding
    layer only (no encoder layers), the space the nearest tokens are taken in."""
    import torch

    from .hooks import embed, sequence_embeds

    emb = lm.embedding_matrix
    out = []
    with torch.no_grad():
        for start in range(0, emb.shape[0], chunk):
            pre_ln = emb[start:start + chunk].unsqueeze(1)
            out.append(embed(lm, sequence_embeds(lm, pre_ln))[:, 1].float().cpu())
    return torch.cat(out)


def nearest_ids(analysis, keys, k: int = 10):
    """Ids [n, k] of the k nearest vocabulary tokens (cosine) to each row's position-1 vector.
    analysis: [n, l, h] (OptimResult.analysis) or [n, h]; keys: [V, h]."""
    from .metrics import cosine_topk

    vectors = analysis[:, 0] if analysis.dim() == 3 else analysis
    return cosine_topk(vectors.float(), keys, k)[1]


def compare(mode: str, reference, result, keys, k: int = 10) -> Fidelity:
    """Fidelity of `result` (run in `mode`) against `reference` (fp32, same objectives, seeds, steps)."""
    import torch

    if list(reference.labels) != list(result.labels):
        raise ObjectiveError("fidelity compares results of the same objectives in the same order")
    ref, act = reference.activation.double(), result.activation.double()
    ratio = float(act.mean() / ref.mean()) if float(ref.mean()) != 0 else float("nan")
    rel = float(((act - ref).abs() / ref.abs().clamp_min(1e-12)).max())
    near_ref, near = nearest_ids(reference.analysis, keys, k), nearest_ids(result.analysis, keys, k)
    shared = [len(set(a.tolist()) & set(b.tolist())) / near_ref.shape[1] for a, b in zip(near_ref, near)]
    return Fidelity(mode, ratio, float(torch.tensor(shared).mean()), rel, len(shared))


def choose_default(results: Mapping[str, Mapping]) -> str:
    """The fastest eligible mode. results[mode] holds `seconds_per_step` and, for modes other than fp32,
    `activation_ratio` and `top10_overlap` (fp32 is the reference, always eligible)."""
    def eligible(mode: str, r: Mapping) -> bool:
        return mode == "fp32" or (r["activation_ratio"] >= MIN_ACTIVATION_RATIO
                                  and r["top10_overlap"] >= MIN_TOP10_OVERLAP)

    candidates = [(r["seconds_per_step"], PRECISIONS.index(m), m) for m, r in results.items() if eligible(m, r)]
    if not candidates:
        raise ObjectiveError("no precision mode is eligible: include fp32, the reference")
    return min(candidates)[2]
