# localconn: `make bench` (the main job) and `make test` work on a fresh machine
# with nothing but Python: they install what they need first.
# PEP 668: where the interpreter refuses installs (a distribution's system Python, outside
# any venv), or with LOCALCONN_VENV=1, everything goes into a project venv, .venv, made
# with --system-site-packages so that an installed PyTorch (a GPU machine's) is reused.
# An explicit PYTHON=... (or one in the environment, as CI sets) is always used as given.
SYS_PYTHON ?= python3
ifeq ($(origin PYTHON),undefined)
NEED_VENV := $(shell $(SYS_PYTHON) -c "import os, sys, sysconfig; \
	managed = os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')); \
	print(int((managed and sys.prefix == sys.base_prefix) or os.environ.get('LOCALCONN_VENV') == '1'))")
endif
ifeq ($(NEED_VENV),1)
PYTHON := .venv/bin/python
VENV := .venv/bin/python
else
PYTHON ?= python3
VENV :=
endif
PIP := $(PYTHON) -m pip
# torch is installed only when missing (never replaced: a GPU machine has its own)
TORCH_SPEC ?= torch==2.13.0
BENCH_OUT ?= out/bench

.PHONY: emulators check-cuda-sm90 check-cuda-sm80 help deps install install-test install-bench test bench lint format gpu-check check-cuda check-triton \
	perf-model perf-model-check perf-model-baseline gpu-prebuild gpu-check-dry sdist-check

help:
	@echo "make bench   - run the kernel benchmark suite (GPU suites on a GPU, the cpu suite otherwise)"
	@echo "make test    - install test dependencies and run the whole test suite"
	@echo "make lint    - ruff"
	@echo "make check-cuda - compile every csrc/*.cu for sm_80 and sm_90 with nvcc (no GPU needed)"
	@echo "make check-triton - compile the Triton tiles for sm_90 and fail on spills (no GPU needed)"
	@echo "make perf-model - the static cost model: predicted time vs roofline per case (no GPU)"
	@echo "make perf-model-check - its CI subset against benchmarks/results/model/baseline.json"
	@echo "make gpu-prebuild - build the CUDA extension here for the lent GPU machine"
	@echo "make gpu-check OUT=dir - the one-call GPU check (on the GPU machine)"
	@echo "make sdist-check - build the sdist, install it in a fresh venv, run tests from it"

# build requirements first: the editable install runs without build isolation,
# so no second PyTorch is downloaded into a build environment
deps: $(VENV)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	@$(PYTHON) -c "import setuptools, wheel" 2>/dev/null || $(PIP) install -q "setuptools>=64" wheel

.venv/bin/python:
	@echo "make: $(SYS_PYTHON) refuses installs (PEP 668) or LOCALCONN_VENV=1: using the project venv .venv (--system-site-packages: an installed PyTorch is reused)"
	$(SYS_PYTHON) -m venv --system-site-packages .venv

install: deps
	$(PIP) install -q --no-build-isolation -e .

# triton (for the Triton interpreter on CPU, and the cost model's sm_90 compiler) only
# when missing, never replaced; the version is pinned so that the cost model's
# baseline (compiled by this Triton) compares like with like in CI
TRITON_SPEC ?= triton==3.9.0
install-test: deps
	$(PIP) install -q --no-build-isolation -e ".[test]"
	@$(PYTHON) -c "import triton" 2>/dev/null || $(PIP) install -q "$(TRITON_SPEC)"

# (after install-test, as in CI, localconn is installed from this tree: only the bench
# extras are added, without building the extensions a second time)
install-bench: deps
	@if $(PYTHON) -c "import localconn, pathlib, sys; \
		sys.exit(0 if pathlib.Path(localconn.__file__).resolve().parent.parent == pathlib.Path('.').resolve() else 1)" 2>/dev/null; then \
		$(PIP) install -q tqdm matplotlib tabulate; \
	else \
		$(PIP) install -q --no-build-isolation -e ".[bench]"; \
	fi

# the suite in TEST_WORKERS processes (pytest-xdist; auto: one per CPU, 1: in this process;
# pytest-benchmark is for benchmarks/, not tests/); idle workers take tests queued on busy
# ones (worksteal: the emulator's tensor-core tests are long)
TEST_WORKERS ?= auto
test: install-test emulators
	$(PYTHON) -m pytest tests -q -p no:cacheprovider -p no:benchmark --durations=15 \
		-n $(TEST_WORKERS) --dist worksteal

# csrc/'s two CPU emulators (tests/cuda_emulator.py, perfmodel/emulator.py's traced one),
# built side by side once (cached by a hash of csrc/; else every test worker builds both)
emulators: install-test
	@$(PYTHON) -c "import sys; sys.path.insert(0, 'tests'); import cuda_emulator as e; \
		e.compiler() and e.build()" & \
	$(PYTHON) -c "import shutil; from perfmodel import emulator as e; \
		any(map(shutil.which, ('g++', 'c++'))) and e.build()" & \
	wait

bench: install-bench
	@if $(PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(PYTHON) -m benchmarks --suite paper,large-kernel --out $(BENCH_OUT); \
	else \
		$(PYTHON) -m benchmarks --suite cpu --quick --out $(BENCH_OUT); \
		$(PYTHON) -m benchmarks --suite cpu-targets --quick --dtype float32,bfloat16 \
			--layout nchw,channels_last --direction fwd,fwdbwd \
			--provider 'localconn-cpu,localconn-fused,torch-*,flex-attention' \
			--out $(BENCH_OUT)/cpu-targets; \
	fi

lint:
	@$(PYTHON) -m ruff --version >/dev/null 2>&1 || $(PIP) install -q ruff
	$(PYTHON) -m ruff check localconn triton_kernels tests benchmarks examples perfmodel setup.py .ci/triton-resources

format:
	$(PYTHON) -m ruff format localconn triton_kernels tests benchmarks examples perfmodel setup.py

# The static cost model (perfmodel/README.md): sm_90 SASS of the kernels that really run,
# counts per output, predicted time ranges on H100/H200 beside the roofline. Predictions,
# not measurements. perf-model-check (CI) runs the --quick subset against the committed
# baseline and fails when a row's predicted time grows by more than 10%; after a kernel
# change that moves predictions on purpose, refresh it with make perf-model-baseline.
PERF_BASELINE := benchmarks/results/model/baseline.json
perf-model: install-test
	$(PYTHON) -m perfmodel --out build/perf-model
	@cat build/perf-model/perf-model.md

perf-model-check: install-test
	$(PYTHON) -m perfmodel --quick --out build/perf-model-quick --check $(PERF_BASELINE)

perf-model-baseline: install-test
	$(PYTHON) -m perfmodel --quick --out build/perf-model-quick --write-baseline $(PERF_BASELINE)

# The GPU check in one device call. First, here: make gpu-prebuild (the CUDA extension for
# the GPU machine's Python 3.12 + torch 2.11.0+cu130, into build/gpu-prebuilt/); then on
# the machine, carrying build/gpu-prebuilt: bash .ci/gpu-check $OUT (at most about 10 minutes;
# logs, kernel times and benchmark results under OUT). gpu-check-dry runs the same script
# on the CPU at tiny sizes (CI).
gpu-prebuild:
	bash .ci/gpu-prebuild

gpu-check:
	bash .ci/gpu-check $(if $(OUT),$(OUT),out/gpu-check)

# the sdist built, installed into a fresh venv and tested there (.ci/sdist-check)
sdist-check: install-test
	PYTHON=$(PYTHON) bash .ci/sdist-check

gpu-check-dry: install-test install-bench
	bash .ci/gpu-check --dry-run out/gpu-check-dry

# Compile every CUDA source for sm_80 and sm_90 without a GPU (nvcc only; the
# kernels know no PyTorch), then syntax-check the PyTorch binding against the
# installed PyTorch's headers, and fail on any kernel that uses local memory
# (ptxas's report: .ci/cuda-resources, table in build/check-cuda/resources.md).
# sm_90 is the cost model's compile (perfmodel/cuda_costs.py: the extension's flags,
# cached by a hash of csrc/, so after make perf-model-check it costs nothing); sm_80 is
# compiled here. `make -j2 check-cuda` compiles in parallel.
NVCC ?= nvcc
CHECK_CUDA_DIR := build/check-cuda
CUDA_SOURCES := $(wildcard csrc/*.cu)
CUDA_HEADERS := $(wildcard csrc/*.h csrc/*.cuh)
CUDA_OBJECTS := $(patsubst csrc/%.cu,$(CHECK_CUDA_DIR)/%.sm_80.cubin,$(CUDA_SOURCES))

# (device code only: -cubin skips the host compile, which the emulator's -Wall -Werror
# build and .ci/check-binding cover)
$(CHECK_CUDA_DIR)/%.sm_80.cubin: csrc/%.cu $(CUDA_HEADERS)
	@mkdir -p $(CHECK_CUDA_DIR)
	$(NVCC) -std=c++17 -O3 -arch=sm_80 -Werror all-warnings -Xptxas -v \
		-cubin $< -o $@ 2> $(CHECK_CUDA_DIR)/$*.ptxas.log || \
		{ cat $(CHECK_CUDA_DIR)/$*.ptxas.log; rm -f $@; exit 1; }

check-cuda-sm90:
	@mkdir -p $(CHECK_CUDA_DIR)
	@$(PYTHON) -c "import shutil; from perfmodel.cuda_costs import SOURCES, cubins, ptxas_log; \
		s = SOURCES[:-1]; [shutil.copy(ptxas_log(c), '$(CHECK_CUDA_DIR)/' + n + '.sm_90.ptxas.log') \
		for n, c in zip(s, cubins(s))]"

check-cuda-sm80: $(CUDA_OBJECTS)

check-cuda: $(CUDA_OBJECTS) check-cuda-sm90
	@bash .ci/check-binding
	@$(PYTHON) .ci/cuda-resources $(CHECK_CUDA_DIR)
	@echo "check-cuda: $(words $(CUDA_OBJECTS)) CUDA sources compiled for sm_80 and sm_90; binding and resources checked"

# Compile the Triton kernels as the JIT specialises them (perfmodel/triton_jit.py) for
# sm_90, the fixed tile and the autotuning candidates of the paper's 7x7 cases, and fail
# on a tile that uses local memory; the table goes to build/triton-resources.md.
check-triton:
	@mkdir -p build
	$(PYTHON) .ci/triton-resources build/triton-resources.md
