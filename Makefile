# Top-level entry points. `make demo` and `make test` set up a fresh Debian
# machine (installing missing packages when run as root), build and run.

BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# The packagers' build (CMAKE_BUILD_TYPE=Release, -O3), with each compiler.
RELEASE_BUILD ?= build-release
# Warnings are errors in make test only (OCIL_WERROR is off by default).
WERROR ?= OFF
# Seconds each fuzz target runs: `make fuzz` (long), and within `make test`
# (six targets, a minute in all).
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 8
JOBS ?= $(shell nproc)

# Build dependencies, then what the tests and the demo run as independent
# judges (skopeo, umoci, bubblewrap) and what the fixtures are made from.
PACKAGES = cmake make gcc pkg-config libarchive-dev libjansson-dev libssl-dev zlib1g-dev libcurl4-openssl-dev \
	libdeflate-dev libisal-dev libzstd-dev libyaml-dev libmicrohttpd-dev zstd g++ \
	skopeo umoci bubblewrap busybox-static patchelf python3 python3-pandas python3-requests \
	docker-registry apache2-utils openssl curl podman python3-jsonschema strace conda-package-handling \
	groff-base man-db bsdextrautils bsdutils \
	clang clang-format cppcheck valgrind

.PHONY: all deps test-deps build test demo format format-check lint clean fuzz fuzz-build release-builds

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $$missing"; \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages: $$missing"; \
			echo "run as root, or: sudo apt-get install $$missing"; exit 1; \
		fi; \
	fi

# What only the tests need beyond deps: AWS's runtime client for the run
# tests, from the npm registry.
test-deps: deps
	@# Node.js with its headers and npm, for AWS's runtime client in the run
	@# tests (the machine's own Node.js when it has one, else Debian's)
	@if ! command -v npm >/dev/null || [ ! -f /usr/include/node/node_api.h ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: nodejs npm libnode-dev"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm libnode-dev >/dev/null; \
		else \
			echo "missing Node.js, its headers or npm: sudo apt-get install nodejs npm libnode-dev"; exit 1; \
		fi; \
	fi
	@# AWS's Node.js runtime client and node-addon-api from the npm registry
	@# (pinned and verified), into a cache outside the repository
	@bash testdata/mk-ric-base.sh --fetch

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCIL_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: formatting, the normal build's tests (unit, CLI, end to
# end), then the unit and CLI tests again under ASan+UBSan (the heavy ones,
# whose subject is the real invocation or the memory bound, only once).
test: WERROR = ON
test: build test-deps format-check lint release-builds
	bash tests/ctest.sh $(BUILD) -j $(JOBS)
	cmake -S . -B $(ASAN_BUILD) -DOCIL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DOCIL_WERROR=ON \
		-DOCIL_FIXTURES=$(abspath $(BUILD))/fixtures >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 bash tests/ctest.sh $(ASAN_BUILD) -j $(JOBS) -LE heavy
	$(MAKE) fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

# What a packager runs, with gcc and with clang, warnings as errors: -O3
# finds what -O2 does not (maybe-uninitialized), clang words others.
release-builds: deps
	for cc in gcc clang; do \
		CC=$$cc cmake -S . -B $(RELEASE_BUILD)-$$cc -DCMAKE_BUILD_TYPE=Release -DOCIL_WERROR=ON >/dev/null && \
		cmake --build $(RELEASE_BUILD)-$$cc -j $(JOBS) >/dev/null || exit 1; \
	done

# libFuzzer targets (clang, ASan+UBSan) over the same sources, in their own
# build tree (warnings are release-builds' job); each runs FUZZ_SECONDS from
# its seed corpus.
fuzz-build: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DOCIL_FUZZ=ON -DOCIL_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: build
	bash demo/demo.sh $(BUILD)

format:
	clang-format -i src/*/*.[ch] layers/*.[ch] tests/*.[ch] tests/fuzz/*.[ch]

format-check:
	clang-format --dry-run -Werror src/*/*.[ch] layers/*.[ch] tests/*.[ch] tests/fuzz/*.[ch]

# cppcheck, then the layering rule (docs/ARCHITECTURE.md): no folder
# includes a higher one; the self-test plants such includes and sees them
# refused.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
		-D_GNU_SOURCE --inline-suppr -I src -I . src layers
	bash tests/check-includes.sh
	bash tests/check-includes.sh --self-test

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(RELEASE_BUILD)-gcc $(RELEASE_BUILD)-clang
