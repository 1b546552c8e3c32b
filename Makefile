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
	rm -f $(BIN)
	rm -rf runs
