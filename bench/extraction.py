"""Model extraction against the demo digits CNN: what it costs to steal, what the gateway's controls change,
and how often its extraction signal notices — with IBM ART's extraction attacks side by side.

1. Direct: each attack against the demo CNN in process (no gateway); fidelity (agreement with the victim
   on the 450 test digits) after each training round; queries to 90 % fidelity. JBDA starts from 100
   training digits (10 per class); Knockoff draws from natural-image patches (``natural-patches``: no
   digit in them) and, as a reference, from the digits training split (an attacker with unlabelled
   in-distribution data); equation solving fits a linear softmax (it is exact only for linear victims).
2. Through the gateway (uvicorn on loopback, ``RemoteModel`` with an API key): the demo's config with
   every control on (auth, rate limits 50 rps / burst 100 per identity, daily quota, extraction signal,
   audit, adversarial guard), and with rate limits, guard and audit off. Queries to 90 %, wall time,
   whether the attack was refused and whether the signal flagged it.
3. Detection: each attack's recorded query stream replayed into the gateway's ``ExtractionMonitor`` (same
   defaults) per seed; detection rate and queries to detection. Adaptive attackers: the stream spread
   round-robin over N identities (flagged if any identity is), and mixed with benign digits at r benign
   queries per attack query. False positives: benign-only identities.
4. ART 1.20.1 ``KnockoffNets`` (random) and ``CopycatCNN`` on the same victim, surrogate pool, thief
   network, budget and epochs, against ours trained once at the end (rounds=1) — fidelity and time.

    python bench/extraction.py --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.certify import machine_name  # noqa: E402
from modelshield.attacks.extraction import (  # noqa: E402
    EquationSolving,
    EvalSet,
    ExtractionResult,
    JacobianAugmentation,
    KnockoffNets,
    natural_patches,
)
from modelshield.attacks.extraction.substitutes import MLP  # noqa: E402
from modelshield.core.datasets import Dataset, sklearn_dataset  # noqa: E402
from modelshield.core.model import Model, TorchModel  # noqa: E402
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES  # noqa: E402
from modelshield.serve.extraction import ExtractionMonitor  # noqa: E402

TARGET = 0.9


def attacks(train: Dataset, budget: int, seed: int) -> dict[str, Any]:
    """The attacks of part 1, configured for ``budget`` queries."""
    seeds = torch.cat([train.x[train.y == c][:10] for c in range(10)])
    patches, regions = natural_patches(budget, DEMO_INPUT_SHAPE, seed=seed)
    digits = train.x[torch.from_numpy(np.random.default_rng(seed).permutation(len(train)))]
    rounds = max(4, budget // 500)
    return {
        "equation (least squares)": EquationSolving(queries=min(budget, 2000), seed=seed),
        "jacobian (JBDA)": JacobianAugmentation(seeds, iterations=10, kappa=400, epochs=20, seed=seed),
        "knockoff random, natural patches": KnockoffNets(patches, rounds=rounds, epochs=20, seed=seed),
        "knockoff adaptive, natural patches": KnockoffNets(
            patches, surrogate_labels=regions, strategy="adaptive", rounds=rounds, epochs=20, seed=seed
        ),
        "knockoff random, unlabelled digits": KnockoffNets(
            digits[: min(budget, len(digits))], rounds=max(4, len(digits) // 200), epochs=20, seed=seed
        ),
    }


def run_attack(attack: Any, victim: Model, budget: int, evaluation: EvalSet, record: bool = False) -> ExtractionResult:
    if isinstance(attack, EquationSolving):
        return attack(victim, evaluation=evaluation, record=record)
    if isinstance(attack, KnockoffNets):
        budget = min(budget, attack.surrogate.shape[0])
    result: ExtractionResult = attack(victim, budget=budget, evaluation=evaluation, record=record)
    return result


def first_flag(monitor: ExtractionMonitor, streams: list[tuple[str, np.ndarray, np.ndarray, bool]]) -> int | None:
    """Feed (subject, x, probs, is_attack) queries one at a time; attack queries sent until any subject is flagged."""
    sent = 0
    for subject, x, p, is_attack in streams:
        monitor.observe(subject, x[None], p[None])
        sent += int(is_attack)
        if monitor.flagged(subject):
            return sent
    return None


def detection(
    transcript: tuple[np.ndarray, np.ndarray],
    benign: tuple[np.ndarray, np.ndarray],
    identities: int,
    ratio: int,
    seed: int,
) -> int | None:
    """Queries to detection for one attack stream spread over ``identities`` and mixed with ``ratio`` benign each."""
    x, p = transcript
    bx, bp = benign
    rng = np.random.default_rng(seed)
    stream = []
    for i in range(len(x)):
        who = f"attacker-{i % identities}"
        stream.append((who, x[i], p[i], True))
        for _ in range(ratio):
            j = int(rng.integers(len(bx)))
            stream.append((who, bx[j], bp[j], False))
    return first_flag(ExtractionMonitor(), stream)


@contextmanager
def gateway(state: Path, controls: bool) -> Iterator[tuple[str, str]]:
    """The demo gateway (``modelshield serve --demo``'s config) on a free loopback port; yields (predict URL, key)."""
    import socket

    import uvicorn

    from modelshield.cli.serve import prepare_demo
    from modelshield.serve.app import create_app
    from modelshield.serve.config import parse_config

    path, key, _ = prepare_demo(state, "127.0.0.1", 0)
    data = tomllib.loads(path.read_text())
    if not controls:
        data.pop("guard", None)
        data["rate_limits"] = {"insecure_disabled": True}
        data["audit"] = {"insecure_disabled": True}
    app = create_app(parse_config(data))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/models/demo/predict", key
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def flags(url: str) -> float:
    import httpx

    base = url.split("/v1/")[0]
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith('modelshield_extraction_flags_total{model="demo"}'):
            return float(line.split()[-1])
    return 0.0


def through_gateway(train: Dataset, evaluation: EvalSet, budget: int) -> list[dict[str, Any]]:
    from modelshield.core.adapters import RemoteModel

    rows = []
    with TemporaryDirectory() as tmp:
        for controls in (True, False):
            for name in ("jacobian (JBDA)", "knockoff random, natural patches"):
                attack = attacks(train, budget, 0)[name]
                with gateway(Path(tmp) / "demo", controls) as (url, key):
                    victim = RemoteModel(
                        url,
                        input_shape=DEMO_INPUT_SHAPE,
                        num_classes=DEMO_NUM_CLASSES,
                        headers={"Authorization": f"Bearer {key}"},
                        output="probabilities",
                    )
                    start = time.perf_counter()
                    r = run_attack(attack, victim, budget, evaluation)
                    seconds = time.perf_counter() - start
                    victim.close()
                    time.sleep(0.5)  # the signal is scored after each response
                    flagged = flags(url) > 0 if controls else None
                rows.append(
                    {
                        "attack": name,
                        "controls": "on" if controls else "off",
                        "queries_to_90": r.queries_to(TARGET),
                        "fidelity": r.fidelity,
                        "queries": r.queries,
                        "dropped": r.dropped,
                        "stop": r.stop_reason if r.refusal is None else f"refused ({r.refusal.kind})",
                        "flagged": flagged,
                        "seconds": round(seconds, 1),
                    }
                )
    return rows


def art_side_by_side(
    victim: TorchModel, train: Dataset, evaluation: EvalSet, budget: int, epochs: int
) -> list[dict[str, Any]]:
    from art.attacks.extraction import CopycatCNN
    from art.attacks.extraction import KnockoffNets as ArtKnockoff
    from art.estimators.classification import PyTorchClassifier

    pool, _ = natural_patches(budget, DEMO_INPUT_SHAPE, seed=0)
    labels = evaluation.victim_labels
    assert labels is not None

    def art_classifier(net: torch.nn.Module) -> PyTorchClassifier:
        return PyTorchClassifier(
            net,
            loss=torch.nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
            input_shape=DEMO_INPUT_SHAPE,
            nb_classes=DEMO_NUM_CLASSES,
            clip_values=(0.0, 1.0),
        )

    def fidelity(net: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((net.eval()(evaluation.x).argmax(1) == labels).float().mean())

    # ART reads probabilities off the estimator's predict: give it the victim with its softmax, as a user would
    victim_art = art_classifier(torch.nn.Sequential(victim.module, torch.nn.Softmax(dim=1)))
    rows = []
    for name, art_attack, soft in (
        (
            "KnockoffNets random, probabilities",
            lambda: ArtKnockoff(victim_art, 64, 64, epochs, budget, use_probability=True),
            True,
        ),
        ("CopycatCNN, labels", lambda: CopycatCNN(victim_art, 64, 64, epochs, budget), False),
    ):
        torch.manual_seed(0)
        thief = MLP(DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES)
        start = time.perf_counter()
        art_attack().extract(pool.numpy(), thieved_classifier=art_classifier(thief))
        art_seconds = time.perf_counter() - start
        ours = KnockoffNets(pool, rounds=1, epochs=epochs, use_scores=soft, seed=0)
        start = time.perf_counter()
        mine = ours(victim, budget=budget, evaluation=evaluation)
        our_seconds = time.perf_counter() - start
        rows.append(
            {
                "attack": name,
                "art_fidelity": fidelity(thief),
                "art_seconds": round(art_seconds, 1),
                "ours_fidelity": mine.fidelity,
                "ours_seconds": round(our_seconds, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=6000, help="queries per attack (direct)")
    parser.add_argument("--gateway-budget", type=int, default=3000, help="queries per attack through the gateway")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per attack for the detection rate")
    parser.add_argument("--art-budget", type=int, default=2000)
    parser.add_argument("--art-epochs", type=int, default=20)
    parser.add_argument("--skip-gateway", action="store_true")
    parser.add_argument("--art-only", action="store_true", help="only the side-by-side with ART (prints JSON)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        report = run(args)
    save(args, report)
    if args.markdown and not args.art_only:
        print(markdown(report, args))
    else:
        print(json.dumps(report, indent=2))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from modelshield.demo import demo_model_and_data

    victim, test = demo_model_and_data(seed=0)
    train = sklearn_dataset("digits", "train", seed=0)
    evaluation = EvalSet(test.x, test.y).labelled(victim)
    if args.art_only:
        return {"art": art_side_by_side(victim, train, evaluation, args.art_budget, args.art_epochs)}
    benign = (train.x.numpy(), victim.predict_proba(train.x).numpy())
    direct: list[dict[str, Any]] = []
    detect: list[dict[str, Any]] = []
    report: dict[str, Any] = {"direct": direct, "detection": detect}
    for name in attacks(train, args.budget, 0):
        print(f"{time.strftime('%H:%M:%S')} {name}", file=sys.stderr, flush=True)
        transcripts = []
        for seed in range(args.seeds):
            attack = attacks(train, args.budget, seed)[name]
            r = run_attack(attack, victim, args.budget, evaluation, record=True)
            assert r.transcript is not None
            transcripts.append(r.transcript)
            if seed == 0:
                direct.append(
                    {
                        "attack": name,
                        "queries_to_90": r.queries_to(TARGET),
                        "fidelity": r.fidelity,
                        "accuracy": r.accuracy,
                        "queries": r.queries,
                        "seconds": round(r.seconds, 1),
                        "curve": [(p.queries, round(p.fidelity, 3)) for p in r.curve],
                    }
                )
        for identities, ratio in ((1, 0), (4, 0), (16, 0), (1, 1), (1, 3), (4, 3)):
            found = [detection(t, benign, identities, ratio, s) for s, t in enumerate(transcripts)]
            hits = [f for f in found if f is not None]
            detect.append(
                {
                    "attack": name,
                    "identities": identities,
                    "benign_ratio": ratio,
                    "detected": f"{len(hits)}/{len(found)}",
                    "median_queries_to_detection": int(np.median(hits)) if hits else None,
                    "attack_queries": int(np.median([len(t[0]) for t in transcripts])),
                }
            )
        save(args, report)
    rng = np.random.default_rng(0)
    false_flags = 0
    for i in range(20):
        order = rng.permutation(len(benign[0]))[:1000]
        stream = [(f"user-{i}", benign[0][j], benign[1][j], True) for j in order]
        false_flags += first_flag(ExtractionMonitor(), stream) is not None
    assert evaluation.victim_labels is not None
    report.update(
        machine=machine_name(),
        victim_test_accuracy=float(torch.eq(evaluation.victim_labels, test.y).float().mean()),
        benign_false_flags=f"{false_flags}/20 identities of 1,000 benign queries",
        gateway=[],
        art=[],
    )
    print(f"{time.strftime('%H:%M:%S')} ART side by side", file=sys.stderr, flush=True)
    report["art"] = art_side_by_side(victim, train, evaluation, args.art_budget, args.art_epochs)
    save(args, report)
    if not args.skip_gateway:
        print(f"{time.strftime('%H:%M:%S')} through the gateway", file=sys.stderr, flush=True)
        report["gateway"] = through_gateway(train, evaluation, args.gateway_budget)
    return report


def save(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write what is measured so far (a long run on a shared machine keeps its finished parts)."""
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _q(v: int | None) -> str:
    return "not reached" if v is None else f"{v:,}"


def markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    out = [
        f"Machine: {report['machine']}. Victim: the demo digits CNN ({report['victim_test_accuracy']:.1%} test accuracy); "
        "fidelity = agreement with the victim on the 450 test digits.",
        "",
        f"**Direct** (budget {args.budget:,}; fidelity measured after each training round):",
        "",
        "| attack | queries to 90 % fidelity | final fidelity | accuracy | queries | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["direct"]:
        out.append(
            f"| {r['attack']} | {_q(r['queries_to_90'])} | {r['fidelity']:.1%} | {r['accuracy']:.1%} | "
            f"{r['queries']:,} | {r['seconds']} |"
        )
    if report["gateway"]:
        out += [
            "",
            f"**Through the demo gateway** (budget {args.gateway_budget:,}, 64 samples per request):",
            "",
            "| attack | controls | queries to 90 % | fidelity | answered | dropped | stopped | flagged | seconds |",
            "|---|---|---:|---:|---:|---:|---|---|---:|",
        ]
        for r in report["gateway"]:
            flagged = "n/a" if r["flagged"] is None else ("yes" if r["flagged"] else "no")
            out.append(
                f"| {r['attack']} | {r['controls']} | {_q(r['queries_to_90'])} | {r['fidelity']:.1%} | "
                f"{r['queries']:,} | {r['dropped']} | {r['stop']} | {flagged} | {r['seconds']} |"
            )
    out += [
        "",
        f"**Extraction signal** (seeds: {args.seeds}; streams replayed into `ExtractionMonitor()` with its defaults). "
        f"Benign traffic: {report['benign_false_flags']} flagged.",
        "",
        "| attack | identities | benign per attack query | detected | median attack queries to detection |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["detection"]:
        out.append(
            f"| {r['attack']} | {r['identities']} | {r['benign_ratio']} | {r['detected']} | "
            f"{_q(r['median_queries_to_detection'])} |"
        )
    out += [
        "",
        f"**Side by side with ART 1.20.1** (same victim, natural-patch pool, MLP thief, {args.art_budget:,} queries, "
        f"{args.art_epochs} epochs, trained once at the end):",
        "",
        "| attack | ART fidelity | ART s | modelshield fidelity | modelshield s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["art"]:
        out.append(
            f"| {r['attack']} | {r['art_fidelity']:.1%} | {r['art_seconds']} | {r['ours_fidelity']:.1%} | "
            f"{r['ours_seconds']} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
