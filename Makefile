# evosearch — see README.md. `make help` lists the targets.
GO ?= go
BIN ?= evosearch

.PHONY: all build test vet bench bench-train bench-cmaes quick clean help

all: build

help:
	@echo "make build        build ./evosearch (pure Go + cgo CPU kernels; no CUDA)"
	@echo "make test         go vet and every test (what .ci/run runs)"
	@echo "make quick        the README's quick start: a small run on real MNIST"
	@echo "make bench        the CPU benchmarks (train-cpu, cmaes), JSON lines"
	@echo "make clean        remove build outputs"
	@echo "make cuda-toolkit install Debian's CUDA 11.8 toolkit (root; no GPU needed)"
	@echo "make kernels      nvcc: kernels/*.cu -> cuda/kernels.fatbin (skips without nvcc)"
	@echo "make gpu-bundle   gpu-bundle/: cuda-tagged binaries + run.sh for a GPU host without Go"

build:
	$(GO) build -o $(BIN) ./cmd/evosearch

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -count=1 ./...

bench: bench-train bench-cmaes

bench-train: build
	./$(BIN) bench train

bench-cmaes: build
	./$(BIN) bench cmaes

clean:
	rm -f $(BIN) $(BIN)-cuda
	rm -rf runs build gpu-bundle cuda/kernels.fatbin

# ---------------------------------------------------------------------------
# The GPU path (DESIGN.md §6). Everything below needs the CUDA toolkit
# (scripts/install-cuda-toolkit.sh, no GPU needed); without nvcc `make
# kernels` says so in one line and skips, so the default build is unaffected.

NVCC ?= nvcc
# SASS for Ampere (sm_80; also runs on sm_86/sm_89) and Hopper (sm_90), and
# PTX for compute_90 so newer GPUs can JIT-compile it. Add e.g.
# "-gencode arch=compute_75,code=sm_75" for a Turing card (its code has no
# tensor-core attention: --gpu-precision tf32 and 3xtf32 need sm_80 or
# newer).
CUDA_GENCODE ?= -gencode arch=compute_80,code=sm_80 \
                -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
# Add -lineinfo for source lines in compute-sanitizer reports; it is off by
# default because CUDA 11.8's ptxas crashes on kernels/attention.cu with it
# for sm_90 (segmentation fault, nvcc exit 139).
NVCCFLAGS ?= -O3 -std=c++17
KERNEL_DIR ?= kernels
KERNEL_SRCS := $(wildcard $(KERNEL_DIR)/*.cu)
KERNEL_HDRS := $(wildcard $(KERNEL_DIR)/*.h)
# The fatbin lives next to the file that embeds it (go:embed cannot reach
# outside the package folder); *.fatbin is ignored by git.
FATBIN := cuda/kernels.fatbin
KERNEL_TU := build/kernels/evosearch_kernels.cu
PTXAS_LOG := build/kernels/ptxas.log
# Test binaries for the GPU host, one per package (cuda.test, ...).
GPU_TEST_PKGS ?= ./cuda
# libc, libstdc++ (the emulator is C++), libgcc_s and libcuda stay dynamic:
# libcuda must be the host driver's own, and Debian 12's static libstdc++
# would raise the glibc needed from 2.34 to 2.36 (arc4random), which rules
# out Ubuntu 22.04. BUILD.txt in the bundle lists what the host must have.
GPU_LDFLAGS := -s -w
BUNDLE := gpu-bundle
BUNDLE_MAX_MB := 64
SANITIZER_BIN := $(shell command -v compute-sanitizer 2>/dev/null)
comma := ,

.PHONY: cuda-toolkit kernels gpu-bundle gpu-build

cuda-toolkit:
	bash scripts/install-cuda-toolkit.sh

kernels:
	@if ! command -v $(NVCC) >/dev/null 2>&1; then \
		echo "make kernels: $(NVCC) not found, skipping the CUDA kernels (make cuda-toolkit installs it)"; \
	elif [ -z "$(KERNEL_SRCS)" ]; then \
		echo "make kernels: no $(KERNEL_DIR)/*.cu yet, nothing to compile"; \
	else \
		if $(MAKE) -q --no-print-directory $(FATBIN); then echo "make kernels: $(FATBIN) is up to date"; \
		else $(MAKE) -s --no-print-directory $(FATBIN); fi; \
	fi

# One translation unit: kernels/all_kernels.h when it exists (it includes
# every .cu), otherwise every kernels/*.cu in name order. nvcc writes one
# fatbin holding each architecture's SASS plus the PTX.
$(FATBIN): $(KERNEL_SRCS) $(KERNEL_HDRS) scripts/ptxas-summary.awk
	@mkdir -p $(dir $(KERNEL_TU))
	@if [ -f $(KERNEL_DIR)/all_kernels.h ]; then \
		echo '#include "$(KERNEL_DIR)/all_kernels.h"' > $(KERNEL_TU); \
		for f in $(notdir $(KERNEL_SRCS)); do \
			grep -q "\"$$f\"" $(KERNEL_DIR)/all_kernels.h || echo "make kernels: warning: $(KERNEL_DIR)/all_kernels.h does not include $$f"; \
		done; \
	else \
		for f in $(KERNEL_SRCS); do echo "#include \"$$f\""; done > $(KERNEL_TU); \
	fi
	@echo "nvcc: $(words $(KERNEL_SRCS)) kernel files -> $@ (code for $(patsubst code=%,%,$(filter code=%,$(subst $(comma), ,$(CUDA_GENCODE)))))"
	@$(NVCC) $(NVCCFLAGS) --threads 0 $(CUDA_GENCODE) -Xptxas -v -I. -fatbin -o $@.tmp $(KERNEL_TU) > $(PTXAS_LOG) 2>&1; \
		rc=$$?; awk -f scripts/ptxas-summary.awk $(PTXAS_LOG); \
		if [ $$rc -ne 0 ]; then rm -f $@.tmp; echo "make kernels: nvcc failed (exit $$rc); full log: $(PTXAS_LOG)"; exit $$rc; fi
	@mv $@.tmp $@
	@echo "wrote $@ ($$(wc -c < $@) bytes); full ptxas report: $(PTXAS_LOG)"

# The cuda-tagged build (compiles here; runs only where a GPU is).
gpu-build: kernels
	@test -f $(FATBIN) || { echo "make gpu-build: $(FATBIN) is missing (needs nvcc and kernels/*.cu: make kernels)"; exit 1; }
	CGO_ENABLED=1 $(GO) build -tags cuda -o $(BIN)-cuda ./cmd/evosearch

# A self-contained folder for a GPU host that has a driver but no Go:
# copy it there and run `bash run.sh OUTDIR`.
gpu-bundle: kernels
	@test -f $(FATBIN) || { echo "make gpu-bundle: $(FATBIN) is missing (needs nvcc and kernels/*.cu: make kernels)"; exit 1; }
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)
	CGO_ENABLED=1 $(GO) build -tags cuda,cudaextfatbin -trimpath -ldflags '$(GPU_LDFLAGS)' -o $(BUNDLE)/evosearch ./cmd/evosearch
	@for p in $(GPU_TEST_PKGS); do \
		echo "$(GO) test -c -tags cuda $$p"; \
		CGO_ENABLED=1 $(GO) test -c -tags cuda,cudaextfatbin -trimpath -ldflags '$(GPU_LDFLAGS)' -o $(BUNDLE)/$$(basename $$p).test $$p || exit 1; \
		if [ -d $$p/testdata ]; then mkdir -p $(BUNDLE)/testdata && cp -r $$p/testdata/. $(BUNDLE)/testdata/; fi; \
	done
	cp bench/gpu/run.sh $(BUNDLE)/run.sh && chmod +x $(BUNDLE)/run.sh
	cp bench/torch_darts.py bench/torch_population.py $(BUNDLE)/
	@# the binaries (-tags cudaextfatbin) read the fatbin next to them, so
	@# the bundle carries it once (an evosearch that embeds it is make
	@# gpu-build's); its ptxas report travels too
	cp $(FATBIN) $(BUNDLE)/kernels.fatbin
	cp $(PTXAS_LOG) $(BUNDLE)/
	@# compute-sanitizer is part of the toolkit, not the driver: carry it (its
	@# binary and injection libraries) for hosts that lack it, when it fits
	@# in the bundle's size limit (run.sh uses the host's own otherwise).
	@if [ -n "$(SANITIZER_BIN)" ]; then \
		sdir=$$(dirname $$(readlink -f $(SANITIZER_BIN))); \
		libs=$$(for d in $$sdir /usr/lib/nvidia-cuda-toolkit/compute-sanitizer; do \
			[ -f $$d/libsanitizer-collection.so ] && echo $$d && break; done); \
		have=$$(du -sm $(BUNDLE) | cut -f1); \
		need=$$(du -cm $$(readlink -f $(SANITIZER_BIN)) $$libs/*.so | tail -1 | cut -f1); \
		if [ $$((have + need)) -lt $(BUNDLE_MAX_MB) ]; then \
			mkdir -p $(BUNDLE)/sanitizer && cp $$(readlink -f $(SANITIZER_BIN)) $(BUNDLE)/sanitizer/compute-sanitizer && \
			cp $$libs/*.so $(BUNDLE)/sanitizer/ && echo "carried compute-sanitizer ($$libs)"; \
		else echo "compute-sanitizer not carried: $$need MiB on top of $$have MiB would pass the $(BUNDLE_MAX_MB) MiB limit; run.sh uses the GPU host's own if it has one"; fi; \
	else echo "compute-sanitizer not found here; run.sh will use the GPU host's own if it has one"; fi
	@{ echo "built:    $$(date -u +%Y-%m-%dT%H:%M:%SZ) on $$(uname -n)"; \
	   echo "commit:   $$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"; \
	   echo "go:       $$($(GO) version)"; \
	   echo "nvcc:     $$($(NVCC) --version | tail -1)"; \
	   echo "gencode:  $(CUDA_GENCODE)"; \
	   echo "glibc needed by evosearch: $$(objdump -T $(BUNDLE)/evosearch | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"; \
	   echo "libstdc++ needed by evosearch: $$(objdump -T $(BUNDLE)/evosearch | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)"; \
	   echo "dynamic libraries (ldd evosearch):"; ldd $(BUNDLE)/evosearch | sed 's/^/  /'; \
	} > $(BUNDLE)/BUILD.txt
	@size=$$(du -sm $(BUNDLE) | cut -f1); echo "$(BUNDLE)/: $${size} MiB"; ls -l $(BUNDLE); \
	if [ $$size -ge $(BUNDLE_MAX_MB) ]; then echo "make gpu-bundle: $(BUNDLE)/ is $${size} MiB, over the $(BUNDLE_MAX_MB) MiB limit"; exit 1; fi
