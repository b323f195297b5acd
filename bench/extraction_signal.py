"""The gateway's extraction signal: how many attack queries it takes to flag Knockoff-style and spread campaigns,
against how often it flags honest traffic.

Victim: the demo digits CNN. Reference (``rate_limits.extraction_reference``): the first half of the digits
training split; honest traffic is drawn without replacement from the rest (second half of train + test), so it
is in-distribution but never in the reference. Each attack runs against the victim in process with
``record=True`` and its query stream is replayed, one query at a time, into ``ExtractionMonitor.watch`` (the
gateway's call): attack queries sent until any window (identity, tenant or address) is flagged.

Scenarios: the whole campaign under one key; round-robin over 5 or 16 keys of one tenant, with the signal
pooling by tenant (the default) and without (``extraction_group_by = []``, the per-key signal alone); one
key mixing one honest query per attack query. False positives: honest identities of 300 queries each, and
honest tenants of 5 keys × 200 queries pooled; with and without the reference.

    python bench/extraction_signal.py --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.certify import machine_name  # noqa: E402
from modelshield.attacks.extraction import JacobianAugmentation, KnockoffNets, natural_patches  # noqa: E402
from modelshield.core.datasets import sklearn_dataset  # noqa: E402
from modelshield.core.model import Model  # noqa: E402
from modelshield.demo import DEMO_INPUT_SHAPE, demo_model_and_data  # noqa: E402
from modelshield.serve.extraction import ExtractionMonitor  # noqa: E402

Query = tuple[str, str | None, np.ndarray, np.ndarray]  # subject, tenant, input, probabilities


def attack_streams(victim: Model, honest_x: np.ndarray, budget: int, seed: int) -> dict[str, np.ndarray]:
    """Each attack's queries, in the order it sent them."""
    train = sklearn_dataset("digits", "train", seed=0)
    seeds = torch.cat([train.x[train.y == c][:10] for c in range(10)])
    patches, regions = natural_patches(budget, DEMO_INPUT_SHAPE, seed=seed)
    own = torch.from_numpy(honest_x[np.random.default_rng(seed).permutation(len(honest_x))[:budget]])
    attacks: dict[str, KnockoffNets | JacobianAugmentation] = {
        "knockoff random, natural patches": KnockoffNets(patches, rounds=4, epochs=5, seed=seed),
        "knockoff adaptive, natural patches": KnockoffNets(
            patches, surrogate_labels=regions, strategy="adaptive", rounds=4, epochs=5, seed=seed
        ),
        "jacobian (JBDA)": JacobianAugmentation(seeds, iterations=6, kappa=400, epochs=5, seed=seed),
        "knockoff random, unlabelled digits": KnockoffNets(own, rounds=4, epochs=5, seed=seed),
    }
    out = {}
    for name, attack in attacks.items():
        result = attack(victim, budget=budget, record=True)
        assert result.transcript is not None
        out[name] = result.transcript[0]
    return out


def first_flag(monitor: ExtractionMonitor, stream: Sequence[tuple[Query, bool]]) -> tuple[int | None, str]:
    """Attack queries sent until any window is flagged, and the scope that was."""
    sent = 0
    for (subject, tenant, x, p), is_attack in stream:
        sent += int(is_attack)
        raised = monitor.watch(subject, x[None], p[None], model="demo", tenant=tenant)
        if raised:
            return sent, raised[0].scope
    return None, ""


def run(args: argparse.Namespace) -> dict[str, Any]:
    victim, test = demo_model_and_data(seed=0)
    train = sklearn_dataset("digits", "train", seed=0)
    half = len(train) // 2
    reference = train.x[:half].numpy()
    honest_x = np.concatenate([train.x[half:].numpy(), test.x.numpy()])
    honest_p = victim.predict_proba(torch.from_numpy(honest_x)).numpy()

    def monitor(group_by: Sequence[str] = ("tenant",), with_reference: bool = True) -> ExtractionMonitor:
        m = ExtractionMonitor(group_by=group_by)
        if with_reference:
            m.set_reference("demo", reference)
        return m

    rows: list[dict[str, Any]] = []
    delays: dict[tuple[str, str], list[int | None]] = {}
    scopes: dict[tuple[str, str], set[str]] = {}
    scenarios = [
        ("1 key", 1, 0, ("tenant",)),
        ("5 keys, pooled by tenant", 5, 0, ("tenant",)),
        ("5 keys, per key only", 5, 0, ()),
        ("16 keys, pooled by tenant", 16, 0, ("tenant",)),
        ("16 keys, per key only", 16, 0, ()),
        ("1 key, 1 honest per attack query", 1, 1, ("tenant",)),
    ]
    for seed in range(args.seeds):
        print(f"{time.strftime('%H:%M:%S')} seed {seed}: attacks", file=sys.stderr, flush=True)
        streams = attack_streams(victim, honest_x, args.budget, seed)
        for name, xs in streams.items():
            ps = victim.predict_proba(torch.from_numpy(xs)).numpy()
            rng = np.random.default_rng(seed)
            for label, keys, ratio, group_by in scenarios:
                stream: list[tuple[Query, bool]] = []
                for i in range(len(xs)):
                    who = f"thief-{(i // 8) % keys}"  # 8 queries a request, the next request under the next key
                    stream.append(((who, "acme", xs[i], ps[i]), True))
                    for j in rng.integers(len(honest_x), size=ratio):
                        stream.append(((who, "acme", honest_x[j], honest_p[j]), False))
                found, scope = first_flag(monitor(group_by), stream)
                delays.setdefault((name, label), []).append(found)
                if scope:
                    scopes.setdefault((name, label), set()).add(scope)
    for (name, label), each in delays.items():
        hits = [f for f in each if f is not None]
        rows.append(
            {
                "attack": name,
                "scenario": label,
                "detected": f"{len(hits)}/{len(each)}",
                "median_queries_to_flag": int(np.median(hits)) if hits else None,
                "flagged_scopes": sorted(scopes.get((name, label), set())),
            }
        )
    print(f"{time.strftime('%H:%M:%S')} honest traffic", file=sys.stderr, flush=True)
    false_flags: dict[str, str] = {}
    for with_reference in (True, False):
        rng = np.random.default_rng(1)
        flagged = 0
        for i in range(args.honest):
            order = rng.permutation(len(honest_x))[:300]
            stream = [((f"user-{i}", None, honest_x[j], honest_p[j]), True) for j in order]
            flagged += first_flag(monitor(with_reference=with_reference), stream)[0] is not None
        tenants = 0
        for t in range(args.honest // 5):
            order = rng.permutation(len(honest_x))[:1000]
            stream = [
                ((f"user-{t}-{k % 5}", f"tenant-{t}", honest_x[j], honest_p[j]), True) for k, j in enumerate(order)
            ]
            tenants += first_flag(monitor(with_reference=with_reference), stream)[0] is not None
        which = "with reference" if with_reference else "without reference"
        false_flags[which] = (
            f"{flagged}/{args.honest} identities of 300 queries; {tenants}/{args.honest // 5} tenants of 5 keys × 200"
        )
    return {
        "machine": machine_name(),
        "budget": args.budget,
        "seeds": args.seeds,
        "detection": rows,
        "honest": false_flags,
    }


def markdown(report: dict[str, Any]) -> str:
    out = [
        f"Machine: {report['machine']}. Victim: the demo digits CNN; reference: half the digits training split; "
        f"budget {report['budget']:,} queries per attack, {report['seeds']} seeds; streams replayed into "
        "`ExtractionMonitor.watch` with the gateway's defaults.",
        "",
        "| attack | scenario | detected | median attack queries to flag | scope flagged |",
        "|---|---|---:|---:|---|",
    ]
    for r in report["detection"]:
        q = "not flagged" if r["median_queries_to_flag"] is None else f"{r['median_queries_to_flag']:,}"
        out.append(f"| {r['attack']} | {r['scenario']} | {r['detected']} | {q} | {', '.join(r['flagged_scopes'])} |")
    out += ["", "Honest traffic flagged:", ""]
    out += [f"- {which}: {text}" for which, text in report["honest"].items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--honest", type=int, default=50, help="honest identities (and a fifth as many tenants)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    with threadpool_limits(1):
        torch.set_num_threads(1)
        report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(markdown(report) if args.markdown else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
