# Everything runs from a local virtual environment, created on first use; only Python is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# tox environments that `make test` runs: lint, types, the migrations check, the package build,
# the translation catalogs (complete and compiled; GNU gettext), the docs site, the tests on
# SQLite, on PostgreSQL for the oldest and newest supported Django and on MySQL/MariaDB; the tests
# again in a host site whose users have UUID keys and sign in by e-mail, on SQLite, PostgreSQL and
# MySQL/MariaDB; the app on psycopg2 instead of psycopg 3; the schema hints without drf-yasg,
# without drf-spectacular and without either; the example project under Gunicorn on SQLite and
# PostgreSQL (and through PgBouncer), fuzzed by Schemathesis over its Swagger 2.0 and OpenAPI 3.1
# documents, with clients generated from the latter (TypeScript with Node.js and npm); faults
# (workers killed, PostgreSQL restarted) on a private PostgreSQL cluster; as root, the cluster of
# `make cluster` (CLUSTER_ENVS). The host site runs on SQLite too. The newest Django on SQLite (py313-django61), which a cell on PostgreSQL repeats,
# and the export of a million ballots (exports-million, five minutes; a smaller test of the same
# memory bound runs everywhere) are left to `make tox`, to keep `make test` near half an hour.
CI_ENVS := lint,types,migrations,build,catalogs,docs,py311-django52,py311-django52-noyasg,py311-django52-nospectacular,py311-django52-noyasg-nospectacular,host-uuid,example,faults
PG_ENVS := py310-django42-drf314-pg,py313-django61-pg,py311-django52-psycopg2-pg,host-uuid-pg,example-pg
# The tests on MySQL/MariaDB (MYSQL_URL, else 127.0.0.1:3306 as root without a password).
MYSQL_ENVS := py311-django52-mysql,host-uuid-mysql
# Pages in headless Chromium (Swagger UI), when the machine has Chromium.
BROWSER_ENVS := browser
# make cluster's deployment (app hosts in network namespaces, HAProxy, PgBouncer, a replica),
# when this is root with iproute2, HAProxy, PgBouncer and PostgreSQL's server binaries.
CLUSTER_ENVS := cluster

# With pyenv, let tox find every installed interpreter (python3.10 ... python3.13).
ifneq ($(shell command -v pyenv 2>/dev/null),)
export PYENV_ROOT := $(shell pyenv root)
export PYENV_VERSION := $(shell (pyenv version-name; pyenv versions --bare) 2>/dev/null | grep -E '^3\.[0-9]+\.[0-9]+$$' | awk '!seen[$$0]++' | paste -sd: -)
endif

.PHONY: help demo cluster cluster-down test bench bench-scaling tox lint types messages venv clean screenshots diagrams

help:
	@echo "make demo   run the example project on http://127.0.0.1:8000 (SQLite, or DATABASE_URL)"
	@echo "make cluster       the example project on three app hosts (network namespaces) behind"
	@echo "                   HAProxy, PgBouncer, a PostgreSQL primary and its streaming replica,"
	@echo "                   Redis (root, haproxy, pgbouncer, PostgreSQL's server binaries)"
	@echo "make cluster-down  remove all of it"
	@echo "make test   lint, types, migrations, build, docs; the tests on SQLite, PostgreSQL and"
	@echo "            MariaDB/MySQL (where they answer);"
	@echo "            the example project over HTTP, fuzzed; faults (workers killed, PostgreSQL"
	@echo "            restarted); Swagger UI in Chromium (where installed)"
	@echo "make bench  the benchmark against a tutorial-style baseline and raw PostgreSQL, and the"
	@echo "            voting methods (about 30 minutes; PostgreSQL on 127.0.0.1:5432 or"
	@echo "            DATABASE_URL; BENCH_ARGS=--help)"
	@echo "make bench-scaling  what HAProxy and PgBouncer cost next to direct connections, and"
	@echo "            what one core sustains (docs/scaling.md; needs haproxy, pgbouncer)"
	@echo "make tox    every tox environment (the whole support matrix)"
	@echo "make messages  the translation catalogs updated from the code and compiled"
	@echo "make screenshots  the README's pictures, taken again in Chromium (docs/images/*.png)"
	@echo "make diagrams     the docs' diagrams, drawn again from docs/diagrams/*.dot (Graphviz)"
	@echo "make clean  remove the virtual environment, tox environments and build output"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(BIN)/tox: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "tox>=4.22"

# The package (editable) and the example project's dependencies (the "example" group).
$(VENV)/.example-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable . --group example
	touch $@

venv: $(BIN)/tox

demo: $(VENV)/.example-installed
	PYTHON=$(abspath $(BIN)/python) example_project/demo.sh

# Three app hosts in network namespaces behind HAProxy, PgBouncer, a PostgreSQL primary and its
# streaming replica (example_project/cluster/cluster.py says what it needs and builds).
cluster: $(VENV)/.example-installed
	$(BIN)/python example_project/cluster/cluster.py up

cluster-down:
	$(PYTHON) example_project/cluster/cluster.py down

test: $(BIN)/tox
	@envs="$(CI_ENVS)"; \
	if [ -z "$$DATABASE_URL" ] && $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null; then \
		export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres; \
	fi; \
	if [ -n "$$DATABASE_URL" ]; then \
		envs="$$envs,$(PG_ENVS)"; echo "PostgreSQL: $$DATABASE_URL"; \
	elif [ -n "$$REQUIRE_POSTGRES" ]; then \
		echo "PostgreSQL is required (REQUIRE_POSTGRES) but 127.0.0.1:5432 does not answer and DATABASE_URL is unset."; exit 1; \
	else \
		echo "NOTE: no PostgreSQL (DATABASE_URL unset, 127.0.0.1:5432 does not answer): the PostgreSQL environments $(PG_ENVS) DO NOT RUN."; \
	fi; \
	if [ -n "$$MYSQL_URL" ] || $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 3306), 2)" 2>/dev/null; then \
		envs="$$envs,$(MYSQL_ENVS)"; echo "MySQL/MariaDB: $${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"; \
	elif [ -n "$$REQUIRE_MYSQL" ]; then \
		echo "MySQL/MariaDB is required (REQUIRE_MYSQL) but 127.0.0.1:3306 does not answer and MYSQL_URL is unset."; exit 1; \
	else \
		echo "NOTE: no MySQL/MariaDB (MYSQL_URL unset, 127.0.0.1:3306 does not answer): the MySQL/MariaDB environment $(MYSQL_ENVS) DOES NOT RUN."; \
	fi; \
	if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		echo "Node.js: $$(node --version)"; \
	elif [ -n "$$REQUIRE_NODE" ]; then \
		echo "Node.js and npm are required (REQUIRE_NODE) but are not on PATH (Debian: apt-get install nodejs npm)."; exit 1; \
	else \
		echo "NOTE: no Node.js/npm (Debian: apt-get install nodejs npm): the TypeScript types generated from the OpenAPI 3.1 document ARE NOT CHECKED (skipped in the example environment)."; \
	fi; \
	chromium="$${CHROMIUM:-/usr/bin/chromium}"; \
	if [ -x "$$chromium" ]; then \
		envs="$$envs,$(BROWSER_ENVS)"; echo "Chromium: $$chromium"; \
	elif [ -n "$$REQUIRE_BROWSER" ]; then \
		echo "Chromium is required (REQUIRE_BROWSER) but $$chromium is missing (Debian: apt-get install chromium)."; exit 1; \
	else \
		echo "NOTE: no Chromium at $$chromium (Debian: apt-get install chromium; or set CHROMIUM): the browser environment $(BROWSER_ENVS) DOES NOT RUN."; \
	fi; \
	if [ "$$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && command -v haproxy >/dev/null 2>&1 \
		&& { command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } \
		&& ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1; then \
		envs="$$envs,$(CLUSTER_ENVS)"; echo "Cluster: root, HAProxy, PgBouncer, PostgreSQL's server binaries"; \
	elif [ -n "$$REQUIRE_CLUSTER" ]; then \
		echo "The cluster is required (REQUIRE_CLUSTER) but needs root, iproute2, haproxy, pgbouncer and PostgreSQL's server binaries."; exit 1; \
	else \
		echo "NOTE: not root, or no iproute2/haproxy/pgbouncer/PostgreSQL server binaries: the cluster environment $(CLUSTER_ENVS) DOES NOT RUN."; \
	fi; \
	missing=""; \
	for version in $$(echo "$$envs" | grep -o 'py3[0-9]*' | sort -u); do \
		python3.$${version#py3} -c "" 2>/dev/null || missing="$$missing $$version"; \
	done; \
	status=0; $(BIN)/tox run --skip-missing-interpreters true -e "$$envs" || status=$$?; \
	for version in $$missing; do \
		echo "NOTE: no python3.$${version#py3} on this machine: every $$version environment was SKIPPED."; \
	done; \
	exit $$status

# The example project under Gunicorn on a fresh PostgreSQL database, load from another process;
# prints one table and checks the targets (docs/performance.md). BENCH_ARGS=--help for options.
bench: $(VENV)/.example-installed
	$(BIN)/python -m benchmarks.run --charts docs/images $(BENCH_ARGS)

# The figures of docs/scaling.md: the shipped deployment straight to PostgreSQL, through
# PgBouncer, and through HAProxy and PgBouncer, in one run (BENCH_ARGS=--help).
bench-scaling: $(VENV)/.example-installed
	$(BIN)/python -m benchmarks.scaling $(BENCH_ARGS)

tox: $(BIN)/tox
	$(BIN)/tox run --skip-missing-interpreters true

# The live results page and Swagger UI as the browser tests see them (tests/example/browser/
# test_pictures.py), into docs/images; needs Chromium (CHROMIUM=path).
screenshots: $(BIN)/tox
	SCREENSHOTS_DIR=$(CURDIR)/docs/images $(BIN)/tox run -e browser -- -k test_pictures

# docs/diagrams/*.dot drawn as docs/images/*.svg; needs Graphviz (Debian: apt-get install graphviz).
diagrams:
	@command -v dot >/dev/null || { echo "Graphviz's dot is missing (Debian: apt-get install graphviz)."; exit 1; }
	for source in docs/diagrams/*.dot; do \
		dot -Tsvg "$$source" -o "docs/images/$$(basename "$${source%.dot}").svg"; \
	done

lint: $(BIN)/tox
	$(BIN)/tox run -e lint

types: $(BIN)/tox
	$(BIN)/tox run -e types

# The translation catalogs (src/django_polls/locale) brought up to date with the code and
# compiled; new entries are then translated by hand (tox -e catalogs fails until they are).
# Needs GNU gettext (Debian: apt-get install gettext).
messages: $(VENV)/.example-installed
	cd src/django_polls && $(abspath $(BIN)/django-admin) makemessages --no-location --no-obsolete -l de -l es -l fr -l pt_BR
	cd src/django_polls && $(abspath $(BIN)/django-admin) compilemessages

clean:
	rm -rf $(VENV) .tox dist build .coverage .coverage.* htmlcov
