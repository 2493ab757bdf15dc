# The first two targets are what a new user runs: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test lint bench clean install

demo: $(STAMP)
	$(BIN)/wanderview demo -o runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/render.py

install: $(STAMP)

# torch goes in first and pinned (a CPU wheel on the build machines); every later install
# sees it satisfied and never pulls another build of torch.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[hf,eval,viewer,app,dev,batch]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs .pytest_cache
