# make run    - the whole local system (moto, CDC bridge and poller, web) on 127.0.0.1:8000;
#               its data survives a restart (make run FRESH=1 starts from nothing)
# make reset  - forget the local system's data (DynamoDB's saved tables, the read database)
# make test   - lint and the full test suite (MariaDB, moto, chromium)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MARIADB_URL ?= mysql://root@127.0.0.1:3306/airticket
# The second pass of `make test` runs on this wall clock: past a year end, and late enough in
# the UTC day that Asia is already on the next date.
CLOCK_AHEAD ?= 2027-12-31T23:30:00Z

.PHONY: install run reset test lint format bench package clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@# mysqlclient needs a C compiler and client library (apt-get install gcc pkg-config
	@# default-libmysqlclient-dev); without them the settings fall back to PyMySQL. The build's
	@# output goes to a log, so a fallback is one line, not a traceback.
	@$(BIN)/pip install -q mysqlclient==2.3.2 >$(VENV)/mysqlclient-build.log 2>&1 \
		|| echo "mysqlclient did not build, using PyMySQL (for the faster driver: apt-get install gcc pkg-config default-libmysqlclient-dev; see $(VENV)/mysqlclient-build.log)"
	touch $@

run: install
	$(BIN)/python manage.py runlocal $(if $(FRESH),--fresh)

reset: install
	$(BIN)/python manage.py reset_local

test: install
	bin/ensure-test-services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=$(MARIADB_URL) $(BIN)/pytest -n 2 --dist loadgroup --durations=15
	@# Again with the clock moved (tests/clock/sitecustomize.py, time-machine): no test may
	@# depend on the day or the hour it runs. All of it but the restart test (three system
	@# starts, minutes, nothing in it reads a date): it keeps make test near ten minutes.
	AIRTICKET_CLOCK=$(CLOCK_AHEAD) PYTHONPATH=$(CURDIR)/tests/clock DATABASE_URL=$(MARIADB_URL) $(BIN)/pytest -n 2 --dist loadgroup -q \
		--ignore=tests/test_local_restart.py
	@# The projection must also work on SQLite (the zero-setup local database).
	DATABASE_URL=sqlite:///$(CURDIR)/var/test-cdc.sqlite3 $(BIN)/pytest tests/cdc -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	bin/ensure-test-services
	$(BIN)/python bench/cdc_bench.py
	$(BIN)/python bench/query_bench.py
	$(BIN)/python bench/rebuild_bench.py

# Lambda packages, built from a lean virtualenv with only requirements.txt (+ Zappa itself):
# no test tooling, and PyMySQL instead of a mysqlclient linked to this machine's libmariadb.
LAMBDA_VENV := .venv-lambda
$(LAMBDA_VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install -q -r requirements.txt zappa==0.63.0
	touch $@

package: $(LAMBDA_VENV)/.installed install
	mkdir -p dist
	@# The admin's static files ship in the package; WhiteNoise serves them on Lambda.
	$(BIN)/python manage.py collectstatic --noinput -v 0
	@# Each stage's zip holds only its allow-list (airticket/packaging.py), assembled under
	@# dist/build/STAGE where zappa runs: nothing else lying in the work tree ships.
	for stage in command cdc query; do \
		$(BIN)/python manage.py package_lambda $$stage --venv $(LAMBDA_VENV) --output dist/$$stage.zip || exit 1; \
	done
	ls -l dist

clean:
	rm -rf $(VENV) $(LAMBDA_VENV) dist var test-artifacts staticfiles
