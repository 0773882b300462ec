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


def single_neuron_summary(neurons, vocab_norms: np.ndarray) -> dict:
    """Table 1: optimized inputs vs. each neuron's most activating word."""
    closest = [row[0]["token"] for row in neurons["nearest"]]
    return {
        "rows": len(neurons),
        "activation": float(np.mean(neurons["activation"])),
        "activation_std": float(np.std(neurons["activation"])),
        "most_activating_activation": float(np.mean(neurons["most_activating_activation"])),
        "closest_cosine": float(np.mean([row[0]["cosine"] for row in neurons["nearest"]])),
        "norm": float(np.mean(neurons["norm"])),
        "word_norm": float(np.mean(vocab_norms)),
        "closest_differs": float(np.mean([c != m for c, m in zip(closest, neurons["most_activating_token"])])),
    }


def group_summary(groups) -> list[dict]:
    """Tables 3 and 4: per (selection, k), target-word cosine, activations, and top-1/top-20 rates."""
    selection = np.array(groups["selection"])
    ks = np.array(groups["k"])
    rank = np.array(groups["target_rank"])
    cosine = np.array(groups["target_cosine"])
    act, target_act = np.array(groups["activation"]), np.array(groups["target_activation"])
    out = []
    for sel in sorted(set(selection)):
        for k in sorted(set(ks[selection == sel])):
            m = (selection == sel) & (ks == k)
            out.append({
                "selection": str(sel), "k": int(k), "words": int(m.sum()),
                "target_cosine": float(cosine[m].mean()), "activation": float(act[m].mean()),
                "target_activation": float(target_act[m].mean()),
                "top1": float((rank[m] == 1).mean()), "top20": float((rank[m] <= 20).mean()),
            })
    return out


def markdown(single: dict, groups: list[dict]) -> str:
    """The card's results section."""
    p = PAPER["single"]
    lines = [
        "### Single neurons (paper Table 1)",
        "",
        f"{single['rows']} neurons. Paper figures are for bert-base-uncased.",
        "",
        "| metric | this artifact | paper |",
        "|---|---|---|",
        f"| mean activation, optimized input | {single['activation']:.3f} (σ = {single['activation_std']:.2f}) "
        f"| {p['activation']} |",
        f"| mean activation, most activating word | {single['most_activating_activation']:.3f} "
        f"| {p['most_activating_activation']} |",
        f"| mean cosine to the closest word | {single['closest_cosine']:.3f} | {p['closest_cosine']} |",
        f"| mean norm, optimized input / words | {single['norm']:.2f} / {single['word_norm']:.2f} "
        f"| {p['norm']} / {p['word_norm']} |",
        f"| closest word ≠ most activating word | {single['closest_differs']:.1%} | {p['closest_differs']:.1%} |",
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
            f"| {g['selection']} | {g['k']} | {g['words']} | {g['target_cosine']:.3f} | {g['activation']:.3f} "
            f"| {g['target_activation']:.3f} | {g['top1']:.0%} ({paper1}) | {g['top20']:.0%} ({paper20}) |"
        )
    return "\n".join(lines)
