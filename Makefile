# undense: `make demo` and `make test` each set up .venv on first use, then do their job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CLUSTER := $(VENV)/.cluster
MODEL ?= models/digits28/generator.onnx
OUT ?= out
# the FPGA: the LFE5U-45F, the smallest ECP5 part that takes the 28x28 generator at 8 bits, placed in about five
# minutes here; auto picks the smallest part that holds the model at its best throughput (for the 28x28 the 85F,
# whose place and route takes over 20); or ecp5-85k, ice40-up5k, ...
TARGET ?= ecp5-45k

.PHONY: install system-packages test-packages demo test test-slow bench sweep fuzz compile rtl sim synth power report lint clean

install: system-packages $(INSTALLED)

# Debian packages the flow needs beyond Python: g++, make and perl for Verilator, lz4 headers for
# FST waveforms, Icarus Verilog as the optional second simulator. Installed with apt-get when missing
# and run as root; otherwise the command is printed.
system-packages:
	@missing=""; \
	for tool in g++ make perl; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	[ -e /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "undense needs:$$missing; run: sudo apt-get install$$missing"; exit 2; fi; \
	fi

# Ray, for `undense sweep --ray` (the cluster extra): make test-slow runs a sweep on a local Ray runtime
$(CLUSTER): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,cluster]'
	touch $@

# Reinstalled whenever pyproject.toml changes; the project itself is installed editable.
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "undense needs Python >= 3.11 (PYTHON=$(PYTHON) is older); run: make PYTHON=python3.11 ..."; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The whole story on the bundled 28x28 generator (MODEL=models/digits/generator.onnx for the 8x8 one): compile,
# 64 images on the RTL (bit-exact), a 10x10 grid generated on the RTL (a conditional model's digits in turn, one a
# column), synthesis for TARGET, energy per image against a GPU, and one HTML page of it all (out/build/report.html).
demo: system-packages $(INSTALLED)
	$(BIN)/undense doctor
	mkdir -p $(OUT)
	$(BIN)/undense sample $(MODEL) -n 100 -o $(OUT)/float_samples.png
	$(BIN)/undense compile $(MODEL) -o $(OUT)/build --target $(TARGET)
	$(BIN)/undense sim $(OUT)/build -n 64
	$(BIN)/undense generate $(OUT)/build -n 100 --backend rtl
	$(BIN)/undense synth $(OUT)/build
	$(BIN)/undense power $(OUT)/build
	$(BIN)/undense report $(OUT)/build

# The tests also drive Debian's chromium (headless) over the HTML report. Tests marked slow run in test-slow, not here.
# Tests marked with one xdist_group run on one worker, so that the fixture they share is made once. The 15 slowest
# are listed at the end, to see where make test's minutes go.
test: system-packages test-packages $(INSTALLED)
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not slow" --durations 15

test-slow: system-packages test-packages $(CLUSTER)
	$(BIN)/python -m pytest -n auto --dist loadgroup -m slow

test-packages:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages: chromium"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "the tests need chromium; run: sudo apt-get install chromium"; exit 2; fi; \
	fi

# The stages one at a time, on the bundled model or MODEL=path/to/model.onnx, for TARGET, into $(OUT)/build
compile: system-packages $(INSTALLED)
	$(BIN)/undense compile $(MODEL) -o $(OUT)/build --target $(TARGET)

rtl: compile
	$(BIN)/undense rtl $(OUT)/build

sim: compile
	$(BIN)/undense sim $(OUT)/build -n 64

synth: compile
	$(BIN)/undense synth $(OUT)/build

# The shipped cocotb testbench on the RTL: random input gaps, output back-pressure, every output against golden
.PHONY: cocotb
cocotb: compile
	$(BIN)/undense cocotb $(OUT)/build

# Energy per image against a GPU: from a simulation, and from the synthesized design when `make synth` ran
power: sim
	$(BIN)/undense power $(OUT)/build

report:
	$(BIN)/undense report $(OUT)/build

# Measured figures (timings and, as the stages land, cycles, resources, energy) -> bench.json
bench: $(INSTALLED)
	$(BIN)/undense bench -o bench.json

# A design-space sweep (undense sweep, docs/sweep.md) of the 8x8 generator, whose points take a few minutes each
# here: every combination of SWEEP_BITS and SWEEP_TARGET compiled, simulated, placed and routed, priced and scored,
# into $(OUT)/sweep (sweep.json, sweep.png, sweep.html); a point already there is not run again. SWEEP_OPTIONS adds
# options, e.g. --ray auto or --workers 4; the 28x28's points take 5 to 25 minutes each (SWEEP_MODEL=
# models/digits28/generator.onnx SWEEP_TARGET=ecp5-45k,ecp5-85k).
SWEEP_MODEL ?= models/digits/generator.onnx
SWEEP_BITS ?= 4,6,8
SWEEP_TARGET ?= ecp5-25k,ice40-up5k
SWEEP_OPTIONS ?=
sweep: system-packages $(INSTALLED)
	$(BIN)/undense sweep $(SWEEP_MODEL) --bits $(SWEEP_BITS) --target $(SWEEP_TARGET) -o $(OUT)/sweep $(SWEEP_OPTIONS)

# Only the mutation fuzz of bench.json: 1,000 damaged copies of the project's models through the command line
fuzz: $(INSTALLED)
	$(BIN)/python -m undense.runtime.mutations -n 1000

lint: $(INSTALLED)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(OUT) build sim_build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name sim_build -type d -prune -exec rm -rf {} +
