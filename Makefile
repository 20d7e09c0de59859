# The two commands of the README; each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak cluster lint install clean

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

# Three nodes on this machine's PostgreSQL and Redis behind HAProxy (docker/compose.yaml's
# topology without Docker); the database is created when missing.
cluster: $(STAMP)
	VOLTHAUS_DATABASE_URL="$${VOLTHAUS_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/volthaus_cluster}" \
	VOLTHAUS_REDIS_URL="$${VOLTHAUS_REDIS_URL:-redis://127.0.0.1:6379/1}" \
		$(BIN)/volthaus cluster --nodes 3 --site examples/demo-site.yaml

lint: $(STAMP)
	$(BIN)/ruff check column_types billing csms pricing wallet rfid amenities meters tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Long (30 min by default): 10,000 stations on three nodes, one killed and restarted midway.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak_cluster

clean:
	rm -rf $(VENV) var/*.db var/*.db-*
