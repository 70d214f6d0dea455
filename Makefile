# moeforge: install what is missing, configure, build, test.
#   make demo   run the main job on the embedded default
#   make test   from a fresh Debian 12 machine: install, build, run every test
# Variables: BUILD_DIR, JOBS, TORCH_DIR (any libtorch >= 2.4: its share/cmake/Torch directory).

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
VENV ?= .venv
PYTHON := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := build-essential cmake ninja-build ccache pkg-config git \
  libcli11-dev nlohmann-json3-dev libpcre2-dev libyaml-dev libtomlplusplus-dev libzstd-dev libgloo-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev \
  python3 python3-venv python3-pip librsvg2-bin chromium
CMAKE_ARGS ?=
# ccache: hash paths relative to the checkout so another clone (CI) reuses the same cache entries.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
ifdef TORCH_DIR
CMAKE_ARGS += -DTorch_DIR=$(TORCH_DIR)
endif

.PHONY: all deps venv configure build test demo bench fuzz clean

all: build

# Debian packages: install only those not yet present (apt-get as root, else via sudo).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Project-local virtualenv with the PyPI torch wheel (its libtorch is what we link) and the
# reference packages the tests compare against. Re-run only when requirements change.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	@touch $@

configure: deps venv
	cmake -S . -B $(BUILD_DIR) -G Ninja -DMOEFORGE_PYTHON=$(abspath $(PYTHON)) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 1200

demo: build
	$(PYTHON) tools/demo.py --moeforge $(BUILD_DIR)/moeforge

bench: build
	$(PYTHON) bench/run_all.py --build $(BUILD_DIR)

# libFuzzer targets (clang from Debian, installed here rather than in deps: only fuzzing needs it),
# built torch-free with ASan + UBSan in build-fuzz and each run for FUZZ_SECONDS (docs/FUZZING.md).
FUZZ_SECONDS ?= 60
fuzz: deps
	@dpkg -s clang >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang; }
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DMOEFORGE_FUZZ=ON \
	  -DMOEFORGE_WITH_TORCH=OFF -DMOEFORGE_BUILD_TESTS=OFF -DMOEFORGE_BUILD_BENCH=OFF
	cmake --build build-fuzz -j $(JOBS)
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR) build-fuzz
