# Set-up and entry points. `make demo` and `make test` each create .venv when missing and
# install everything pinned in constraints.txt before running.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nb2pipe-installed
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO := build/demo
WATCH := $(DEMO)/watch

.PHONY: demo test lint bench golden clean bytecode

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e ".[dev,mlflow,serve,drift,explain]"
	touch $@

# The environment may set PYTHONDONTWRITEBYTECODE; compiled modules make every nb2pipe
# command start ~0.2 s sooner (an editable install is never byte-compiled by pip).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q nb2pipe

demo: bytecode
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	for notebook in examples/*.ipynb; do \
		name=$$(basename $$notebook .ipynb); \
		$(BIN)/nb2pipe compile $$notebook -o $(DEMO)/$$name.pipeline.yaml --dsl $(DEMO)/$${name}_dsl.py || exit 1; \
	done
	$(BIN)/nb2pipe run examples/kale_five_models.ipynb --workdir $(DEMO)
	$(BIN)/nb2pipe run examples/sklearn_train.ipynb --workdir $(DEMO) --param n_estimators=200
	# train -> register in MLflow (sqlite in $(DEMO)) -> serve the champion locally -> ask it -> stop it
	$(BIN)/nb2pipe run examples/lifecycle.ipynb --workdir $(DEMO)
	$(BIN)/python examples/tools/ask_endpoint.py $(DEMO) cancer || { $(BIN)/nb2pipe endpoints --workdir $(DEMO) --stop-all; exit 1; }
	$(BIN)/nb2pipe endpoints --workdir $(DEMO) --stop-all
	# watched model: train, explain, serve with payload logging -> drifted traffic and one
	# explanation from the endpoint -> drift report of the traffic -> retraining run
	$(BIN)/nb2pipe run examples/monitoring.ipynb --workdir $(WATCH)
	$(BIN)/python examples/tools/send_traffic.py $(WATCH) breast-cancer --rows 300 --shift 1.0 --explain \
		|| { $(BIN)/nb2pipe endpoints --workdir $(WATCH) --stop-all; exit 1; }
	$(BIN)/nb2pipe drift --reference models:/breast-cancer@champion --current $(WATCH)/payloads/breast-cancer \
		--workdir $(WATCH) --report $(WATCH)/drift-report.html \
		|| { $(BIN)/nb2pipe endpoints --workdir $(WATCH) --stop-all; exit 1; }
	$(BIN)/nb2pipe retrain examples/monitoring.ipynb --workdir $(WATCH) \
		|| { $(BIN)/nb2pipe endpoints --workdir $(WATCH) --stop-all; exit 1; }
	$(BIN)/nb2pipe endpoints --workdir $(WATCH) --stop-all

lint: bytecode
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

bench: bytecode
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/run_overhead.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/monitoring.py

golden: $(STAMP)
	$(BIN)/python -m pytest tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
