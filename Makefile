# localconn: `make bench` (the main job) and `make test` work on a fresh machine
# with nothing but Python: they install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch is installed only when missing (never replaced: a GPU machine has its own)
TORCH_SPEC ?= torch==2.13.0
BENCH_OUT ?= out/bench

.PHONY: help deps install install-test install-bench test bench lint format gpu-check check-cuda check-triton

help:
	@echo "make bench   - run the kernel benchmark suite (GPU suites on a GPU, the cpu suite otherwise)"
	@echo "make test    - install test dependencies and run the whole test suite"
	@echo "make lint    - ruff"
	@echo "make check-cuda - compile every csrc/*.cu for sm_80 and sm_90 with nvcc (no GPU needed)"
	@echo "make check-triton - compile the Triton tiles for sm_90 and fail on spills (no GPU needed)"

# build requirements first: the editable install runs without build isolation,
# so no second PyTorch is downloaded into a build environment
deps:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	@$(PYTHON) -c "import setuptools, wheel" 2>/dev/null || $(PIP) install -q "setuptools>=64" wheel

install: deps
	$(PIP) install -q --no-build-isolation -e .

# triton (for the Triton interpreter on CPU) only when missing, never replaced
install-test: deps
	$(PIP) install -q --no-build-isolation -e ".[test]"
	@$(PYTHON) -c "import triton" 2>/dev/null || $(PIP) install -q triton

install-bench: deps
	$(PIP) install -q --no-build-isolation -e ".[bench]"

test: install-test
	$(PYTHON) -m pytest tests -q -p no:cacheprovider --durations=15

bench: install-bench
	@if $(PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(PYTHON) -m benchmarks --suite paper,large-kernel --out $(BENCH_OUT); \
	else \
		$(PYTHON) -m benchmarks --suite cpu --quick --out $(BENCH_OUT); \
	fi

lint:
	@$(PYTHON) -m ruff --version >/dev/null 2>&1 || $(PIP) install -q ruff
	$(PYTHON) -m ruff check localconn triton_kernels tests benchmarks examples setup.py

format:
	$(PYTHON) -m ruff format localconn triton_kernels tests benchmarks examples setup.py

# For a lent GPU machine: build, GPU tests, quick benchmark; logs under $(OUT) if set.
gpu-check:
	bash .ci/gpu-check $(if $(OUT),$(OUT),out/gpu-check) $(STAGES)

# Compile every CUDA source for sm_80 and sm_90 without a GPU (nvcc only; the
# kernels know no PyTorch), then syntax-check the PyTorch binding against the
# installed PyTorch's headers, and fail on any kernel that uses local memory
# (ptxas's report: .ci/cuda-resources, table in build/check-cuda/resources.md).
# `make -j2 check-cuda` compiles in parallel.
NVCC ?= nvcc
CHECK_CUDA_DIR := build/check-cuda
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
CUDA_SOURCES := $(wildcard csrc/*.cu)
CUDA_HEADERS := $(wildcard csrc/*.h csrc/*.cuh)
CUDA_OBJECTS := $(patsubst csrc/%.cu,$(CHECK_CUDA_DIR)/%.o,$(CUDA_SOURCES))

$(CHECK_CUDA_DIR)/%.o: csrc/%.cu $(CUDA_HEADERS)
	@mkdir -p $(CHECK_CUDA_DIR)
	$(NVCC) -std=c++17 -O3 $(CUDA_GENCODE) -Werror all-warnings -Xptxas -v -c $< -o $@ \
		2> $(CHECK_CUDA_DIR)/$*.ptxas.log || { cat $(CHECK_CUDA_DIR)/$*.ptxas.log; rm -f $@; exit 1; }

check-cuda: $(CUDA_OBJECTS)
	@bash .ci/check-binding
	@$(PYTHON) .ci/cuda-resources $(CHECK_CUDA_DIR)
	@echo "check-cuda: $(words $(CUDA_OBJECTS)) CUDA sources compiled for sm_80 and sm_90; binding and resources checked"

# Compile the Triton kernels with every autotuning tile (and the fixed one)
# for sm_90 with Triton's ptxas and fail on a tile that spills; the table of
# registers goes to build/triton-resources.md. Needs triton (make install-test).
check-triton:
	@mkdir -p build
	$(PYTHON) .ci/triton-resources build/triton-resources.md
