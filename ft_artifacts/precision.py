"""A precision mode name and a device in, the context the optimizer's steps run under out; plus the
fidelity of a mode against fp32 and the rule that picks the GPU default from measured fidelity.

Modes (whatever the mode, the final activation is re-evaluated in float32 by `optimize`):
- `fp32`: IEEE float32 everywhere.
- `tf32`: float32 tensors; on CUDA, matrix products run on tensor cores in TF32 (10-bit mantissa).
  The TF32 switches (`fp32_precision` where torch has it, else the legacy `allow_tf32` flags, see
  `tf32_flags`) are set only while the steps run and restored afterwards. On CPU they change
  nothing: tf32 computes exactly fp32.
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


# The TF32 switches that matter here: cuBLAS matmuls and cuDNN convolutions. torch >= 2.9 offers the
# `fp32_precision` attributes ("ieee", "tf32" or "none": inherit); reading a legacy `allow_tf32` flag
# in a process that used them raises ("mix of the legacy and new APIs"), so the legacy flags are
# used only by a torch that has no `fp32_precision` attributes.
def _tf32_switches():
    """[(owner object, new-API attribute or None, legacy attribute)] of this torch."""
    import torch

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if _has_new_api(matmul):
        return [(matmul, "fp32_precision"), (conv if conv is not None else cudnn, "fp32_precision")]
    return [(matmul, "allow_tf32"), (cudnn, "allow_tf32")]


def _has_new_api(matmul) -> bool:
    try:
        matmul.fp32_precision  # noqa: B018 - an attribute served by __getattr__
    except (AttributeError, RuntimeError):
        return False
    return True


def tf32_state() -> tuple:
    """The process's TF32 switches as the API in use spells them: ("ieee"|"tf32"|"none", ...) with the
    `fp32_precision` attributes, (bool, bool) with the legacy flags."""
    return tuple(getattr(owner, name) for owner, name in _tf32_switches())


def _set_tf32(values) -> None:
    for (owner, name), value in zip(_tf32_switches(), values):
        setattr(owner, name, value)


@contextlib.contextmanager
def tf32_flags(enabled: bool, device) -> Iterator[None]:
    """TF32 on (enabled) or off (IEEE float32) for CUDA matmuls and convolutions in the block, and the
    caller's settings back after, also on error; a no-op off CUDA. Uses the `fp32_precision` attributes
    where torch has them and the legacy `allow_tf32` flags only where it does not, never a mix, so it
    works whatever the process did before (`torch.set_float32_matmul_precision("high")`,
    `torch.backends.fp32_precision = "tf32"`, transformers' `enable_tf32`, the legacy flags)."""
    if _device_type(device) != "cuda":
        yield
        return
    saved = tf32_state()
    new_api = isinstance(saved[0], str)
    _set_tf32([("tf32" if enabled else "ieee") if new_api else enabled] * len(saved))
    try:
        yield
    finally:
        _set_tf32(saved)


@contextlib.contextmanager
def deterministic(device) -> Iterator[None]:
    """On CUDA: `torch.use_deterministic_algorithms(True)` for the block, with the cuBLAS workspace
    setting it needs (CUBLAS_WORKSPACE_CONFIG=:4096:8 unless already set; it stays set, as cuBLAS reads
    it once). A nondeterministic op then raises instead of silently changing the bytes of a build.
    The caller's setting is restored after. A no-op off CUDA (CPU kernels are deterministic)."""
    import os

    import torch

    if _device_type(device) != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


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

    from .hooks import analysis_space

    emb = lm.embedding_matrix
    out = []
    with torch.no_grad():
        for start in range(0, emb.shape[0], chunk):
            pre_ln = emb[start:start + chunk].unsqueeze(1)
            out.append(analysis_space(lm, pre_ln)[:, 0].float().cpu())
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
