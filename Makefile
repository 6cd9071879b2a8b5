# The two commands (see README.md):
#   make run    set up this machine and run the server on the embedded defaults
#   make test   set up this machine and run every test
# Both start with `make setup`, which installs the Debian packages the build and the tests need
# (Node.js and npm only where no `npm` is installed yet), and the web test harness's npm packages.

DEBIAN_PACKAGES = build-essential cmake clang libclang-dev pkg-config \
	libespeak-ng-dev libsonic-dev libpcaudio-dev espeak-ng \
	libpocketsphinx-dev pocketsphinx-en-us libasound2-dev libopus-dev \
	sip-tester baresip-core sox chromium

SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test bench
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

run: setup
	cargo run --release --bin hotline -- serve

test: setup
	cargo test --workspace --all-targets

bench: setup
	cargo bench --workspace
