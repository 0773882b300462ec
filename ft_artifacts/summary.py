"""Artifact rows in, the paper's summary statistics out (Tables 1, 3 and 4), as numbers and markdown."""

from __future__ import annotations

import numpy as np

# bert-base-uncased, from the paper; shown beside an artifact's own figures for comparison.
PAPER = {
    "single": {"activation": 42.523, "most_activating_activation": 1.283, "closest_cosine": 0.124,
               "norm": 21.818, "word_norm": 16.867, "closest_differs": 0.997},
    "top1": {("absolute", 10): 0.01, ("absolute", 100): 0.22, ("absolute", 250): 0.36, ("absolute", 450): 0.53,
             ("relative", 10): 0.0, ("relative", 100): 0.48, ("relative", 250): 0.67, ("relative", 450): 0.65},
    "top20": {("absolute", 10): 0.03, ("absolute", 100): 0.32, ("absolute", 250): 0.59, ("absolute", 450): 0.66,
              ("relative", 10): 0.02, ("relative", 100): 0.63, ("relative", 250): 0.75, ("relative", 450): 0.68},
}


def _finite(table) -> np.ndarray:
    """[rows] bool: the rows whose optimization did not diverge."""
    return ~np.asarray(table["diverged"], dtype=bool)


def single_neuron_summary(neurons, vocab_norms: np.ndarray) -> dict:
    """Table 1: optimized inputs vs. each neuron's most activating word, over the rows that did not
    diverge (`diverged` counts the others)."""
    ok = _finite(neurons)
    rows = [r for r, keep in zip(neurons.select_columns(
        ["activation", "most_activating_activation", "nearest", "norm", "most_activating_token"]), ok) if keep]
    act = np.array([r["activation"] for r in rows], dtype=np.float64)
    closest = [r["nearest"][0]["token"] for r in rows]
    mean = (lambda values: float(np.mean(values)) if len(values) else None)  # None: no row to average
    return {
        "rows": len(neurons),
        "diverged": int((~ok).sum()),
        "activation": mean(act),
        "activation_std": float(np.std(act, ddof=1)) if len(act) > 1 else None,  # sample sd, as the report's
        "most_activating_activation": mean([r["most_activating_activation"] for r in rows]),
        "closest_cosine": mean([r["nearest"][0]["cosine"] for r in rows]),
        "norm": mean([r["norm"] for r in rows]),
        "word_norm": float(np.mean(vocab_norms)),
        "closest_differs": mean([c != r["most_activating_token"] for c, r in zip(closest, rows)]),
    }


def group_summary(groups) -> list[dict]:
    """Tables 3 and 4: per (selection, k), target-word cosine, activations, and top-1/top-20 rates.
    A diverged row is never a hit: shares count it as a miss; means leave it out."""
    if not len(groups):
        return []
    ok = _finite(groups)
    selection = np.array(groups["selection"])
    ks = np.array(groups["k"])
    rank = np.array([r if r is not None else 0 for r in groups["target_rank"]])
    cosine = np.array([c if c is not None else np.nan for c in groups["target_cosine"]], dtype=np.float64)
    act, target_act = np.array(groups["activation"], dtype=np.float64), np.array(groups["target_activation"])
    out = []
    for sel in sorted(set(selection)):
        for k in sorted(set(ks[selection == sel])):
            m = (selection == sel) & (ks == k)
            good = m & ok
            out.append({
                "selection": str(sel), "k": int(k), "words": int(m.sum()), "diverged": int((m & ~ok).sum()),
                "target_cosine": float(cosine[good].mean()) if good.any() else None,
                "activation": float(act[good].mean()) if good.any() else None,
                "target_activation": float(target_act[m].mean()),
                "top1": float((good & (rank == 1)).sum() / m.sum()),
                "top20": float((good & (rank >= 1) & (rank <= 20)).sum() / m.sum()),
            })
    return out


def _f(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(single: dict, groups: list[dict]) -> str:
    """The card's results section."""
    p = PAPER["single"]
    lines = [
        "### Single neurons (paper Table 1)",
        "",
        f"{single['rows']} neurons ({single['diverged']} diverged, left out). Paper figures are for bert-base-uncased.",
        "",
        "| metric | this artifact | paper |",
        "|---|---|---|",
        f"| mean activation, optimized input | {_f(single['activation'], '.3f')} (sd {_f(single['activation_std'], '.2f')}) "
        f"| {p['activation']} |",
        f"| mean activation, most activating word | {_f(single['most_activating_activation'], '.3f')} "
        f"| {p['most_activating_activation']} |",
        f"| mean cosine to the closest word | {_f(single['closest_cosine'], '.3f')} | {p['closest_cosine']} |",
        f"| mean norm, optimized input / words | {_f(single['norm'], '.2f')} / {_f(single['word_norm'], '.2f')} "
        f"| {p['norm']} / {p['word_norm']} |",
        f"| closest word ≠ most activating word | {_f(single['closest_differs'], '.1%')} | {p['closest_differs']:.1%} |",
        "",
        "### Neuron groups (paper Tables 3 and 4)",
        "",
        "| selection | k | words | cos(target) | activation | target's activation | top-1 (paper) | top-20 (paper) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        key = (g["selection"], g["k"])
        paper1 = f"{PAPER['top1'][key]:.0%}" if key in PAPER["top1"] else "–"
        paper20 = f"{PAPER['top20'][key]:.0%}" if key in PAPER["top20"] else "–"
        lines.append(
            f"| {g['selection']} | {g['k']} | {g['words']} | {_f(g['target_cosine'], '.3f')} | {_f(g['activation'], '.3f')} "
            f"| {_f(g['target_activation'], '.3f')} | {g['top1']:.0%} ({paper1}) | {g['top20']:.0%} ({paper20}) |"
        )
    return "\n".join(lines)
