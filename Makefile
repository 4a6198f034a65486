# Everyday targets. `make setup` once, then `make collect` or `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh &&

.PHONY: setup build collect test lint format bench clean
setup:            ## venv, wheels, colcon build (idempotent)
	bash scripts/setup.sh
build:            ## rebuild the workspace after changing interfaces or entry points
	$(ENV) colcon --log-base log/colcon build --symlink-install --base-paths src
collect: setup    ## the main job: a parallel grasp collection on the local default storage
	.venv/bin/myriad collect --attempts 20 --backends 2
test: setup       ## the test suite (real nodes, real database, real physics)
	$(ENV) python -m pytest -q
lint:             ## ruff lint + format check
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .
bench: setup      ## benchmarks (print ratios and figures)
	$(ENV) for b in bench/bench_*.py; do python $$b || exit 1; done
clean:            ## remove build products (keeps .venv and data/)
	rm -rf build install log
