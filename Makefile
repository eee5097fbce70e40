.PHONY: setup run test data bench clean
setup:
	bash scripts/setup.sh
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
data:
	bash scripts/fetch_data.sh
bench:
	cd src && ../.venv/bin/python ../benchmarks/run_benchmarks.py --config ../benchmarks/baselines.json
clean:
	rm -rf .venv build src/*.egg-info src/core/*.so src/core/convert_idxs.c out
