# One command each: `make demo` sets up and runs the demo assessment; `make test` sets up and runs the tests.
.PHONY: demo test bench

demo:
	./scripts/setup.sh all
	.venv/bin/modelshield assess --demo --out assessment

test:
	./scripts/setup.sh test
	.venv/bin/python -m pytest

bench:
	./scripts/setup.sh "test,bench"
	.venv/bin/python bench/attacks.py --markdown
