# Set-up and entry points. `make demo` and `make test` each create .venv when missing and
# install everything pinned in constraints.txt before running.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nb2pipe-installed
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO := build/demo
WATCH := $(DEMO)/watch
# capacity planning: a request-rate trace shared with CI (read in place, never copied) and a
# latency profile measured by bench/profile_variants.py
TRACE := ../shared/data/twitter-trace-days01-14.txt
PROFILE := tests/data/digits_forests.profile.json
# the JupyterLab extension: node modules from the npm registry, built by jlpm (JupyterLab's
# bundled yarn) and jupyter-builder, installed into .venv with its prebuilt labextension
LAB := jupyter_extension
JLPM := PATH=$(abspath $(BIN)):$$PATH $(abspath $(BIN))/jlpm
LAB_MODULES := $(LAB)/node_modules/.installed
LAB_STAMP := $(VENV)/.nb2pipe-lab-installed
LAB_SOURCES := $(LAB)/package.json $(LAB)/tsconfig.json $(LAB)/pyproject.toml \
	$(shell find $(LAB)/src $(LAB)/style $(LAB)/schema -type f 2>/dev/null)
# the browser test's chromium, from Debian (test tools' own browser downloads fail here)
CHROMIUM := /usr/bin/chromium
# the autoscale tests' Prometheus, from Debian (tests/support/prometheus.py)
PROMETHEUS := /usr/bin/prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test check lint bench bench-serve-deps golden clean bytecode lab prometheus

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e ".[dev,mlflow,serve,drift,explain,capacity,torch]"
	touch $@

$(LAB_MODULES): $(LAB)/package.json $(LAB)/yarn.lock | $(STAMP)
	cd $(LAB) && $(JLPM) install --immutable
	touch $@

$(LAB_STAMP): $(STAMP) $(LAB_MODULES) $(LAB_SOURCES)
	cd $(LAB) && $(JLPM) build:prod
	SKIP_JUPYTER_BUILDER=1 $(PIP_INSTALL) --no-build-isolation --no-deps -e ./$(LAB)
	touch $@

# JupyterLab on examples/ with the nb2pipe sidebar
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=examples

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium \
		|| { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; }

$(PROMETHEUS):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends prometheus \
		|| { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends prometheus; }

prometheus: $(PROMETHEUS)

# The environment may set PYTHONDONTWRITEBYTECODE; compiled modules make every nb2pipe
# command start ~0.2 s sooner (an editable install is never byte-compiled by pip).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q nb2pipe

demo: bytecode $(LAB_STAMP)
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
	# capacity: the day after the Twitter trace planned (day-ahead) for the profiled digits forests
	# at ten times its rate, and day 8 replayed (forecasts fitted on days 1-7) under an HPA-like
	# autoscaler, nb2pipe's planner and the oracle
	$(BIN)/nb2pipe plan --profile $(PROFILE) --trace $(TRACE) --slo-ms 150 --scale 10 -o $(DEMO)/plan.json
	$(BIN)/nb2pipe simulate --profile $(PROFILE) --trace $(TRACE) --slo-ms 150 --days 8 --fit-days 1-7 --scale 10 \
		--policy reactive,planner,oracle

lint: bytecode
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# the whole suite, with the lab extension built, the browser test's chromium and Prometheus
test: lint $(LAB_STAMP) $(CHROMIUM) $(PROMETHEUS)
	cd $(LAB) && $(JLPM) test
	$(BIN)/python -m pytest --durations=25

# a couple of minutes: lint and the tests not marked slow (no lab build, no browser)
check: lint
	$(BIN)/python -m pytest -m "not slow" -q

bench: bytecode
	$(BIN)/python -m bench.compile
	$(BIN)/python -m bench.big_cells
	$(BIN)/python -m bench.fuzz --count 6000 --json bench/results/fuzz.json
	$(BIN)/python -m bench.run_overhead
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.monitoring
	$(BIN)/python -m bench.profile_variants
	$(BIN)/python -m bench.planner

# KServe's own scikit-learn server for bench/serve.py (not on PyPI): python/sklearnserver and
# python/storage of a KServe source release in KSERVE_SRC, installed without their pinned
# dependencies into a venv of their own that reads .venv's packages (same kserve, uvicorn and
# scikit-learn as nb2pipe serve; .venv itself is untouched). Not needed by any test.
SKLEARNSERVER_VENV := build/sklearnserver-venv
bench-serve-deps: $(STAMP)
	@test -d "$(KSERVE_SRC)/python/sklearnserver" -a -d "$(KSERVE_SRC)/python/storage" || \
		{ echo "KSERVE_SRC=DIR: a KServe 0.20 source release holding python/sklearnserver and python/storage"; exit 2; }
	rm -rf $(SKLEARNSERVER_VENV) && $(BIN)/python -m venv --without-pip $(SKLEARNSERVER_VENV)
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))" > \
		"$$($(SKLEARNSERVER_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/nb2pipe-venv.pth"
	$(SKLEARNSERVER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
		"$(KSERVE_SRC)/python/storage" "$(KSERVE_SRC)/python/sklearnserver"
	$(SKLEARNSERVER_VENV)/bin/python -c "import sklearnserver; from importlib.metadata import version as v; \
		print('sklearnserver', v('sklearnserver'), 'with kserve', v('kserve'), 'scikit-learn', v('scikit-learn'))"

golden: $(STAMP)
	$(BIN)/python -m pytest tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache $(LAB)/node_modules $(LAB)/lib $(LAB)/jupyterlab_nb2pipe/labextension
