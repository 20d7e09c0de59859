# The two commands of the README; each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo's database lives in the checkout (var/), unless VOLTHAUS_DATABASE_URL names another.
run: $(STAMP)
	VOLTHAUS_DATABASE_URL="$${VOLTHAUS_DATABASE_URL:-sqlite:///$(CURDIR)/var/volthaus.db}" \
		$(BIN)/volthaus serve --demo

lint: $(STAMP)
	$(BIN)/ruff check column_types billing csms pricing wallet rfid amenities meters tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var/*.db var/*.db-*
