"""Canonical JSON matches RFC 8785's examples; the Merkle tree matches RFC 6962's reference hashes."""

from __future__ import annotations

import math

import pytest

from modelshield.audit.canonical import canonical_event, canonical_json
from modelshield.audit.merkle import Frontier, merkle_root
from modelshield.core.errors import InputError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (333333333.33333329, "333333333.3333333"),
        (1e30, "1e+30"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (1e-27, "1e-27"),
        (-0.0, "0"),
        (100.0, "100"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (5e-324, "5e-324"),
        (-1.5e300, "-1.5e+300"),
        (9007199254740991, "9007199254740991"),
    ],
)
def test_numbers_are_ecmascript_shortest_form(value: float, text: str) -> None:
    assert canonical_json(value) == text.encode()


def test_rfc8785_string_escapes_and_key_order() -> None:
    assert (
        canonical_json("\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/") == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()
    )
    keys = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    # RFC 8785 3.2.3: sorted by UTF-16 code units, so the emoji (a surrogate pair) sorts before U+FB33
    assert canonical_json(keys).decode() == '{"\\r":2,"1":4,"\u0080":6,"ö":7,"€":1,"\U0001f600":5,"דּ":3}'
    assert (
        canonical_json({"b": [1, True, None], "a": {"d": 1.0, "c": "x"}}) == b'{"a":{"c":"x","d":1},"b":[1,true,null]}'
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": 2**60},
        {1: "non-string key"},
        {"x": object()},
        {"x": "\ud800"},
        {"inputs": [[0.1, 0.2]]},
        {"body": "raw request"},
        {"x": "a" * 70_000},
        ["not", "an", "object"],
    ],
)
def test_events_that_cannot_be_logged_exactly_are_refused(bad: object) -> None:
    with pytest.raises(InputError):
        canonical_event(bad)  # type: ignore[arg-type]


def test_deeply_nested_event_is_refused() -> None:
    event: dict = {}
    node = event
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InputError, match="nested"):
        canonical_event(event)


# certificate-transparency's merkle_tree_test: the 8 test leaves and the root at each size
LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_merkle_roots_match_rfc6962_reference() -> None:
    frontier = Frontier()
    assert frontier.root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n, (leaf, root) in enumerate(zip(LEAVES, ROOTS, strict=True), 1):
        frontier.append(leaf)
        assert frontier.root().hex() == root == merkle_root(LEAVES[:n]).hex()


def test_frontier_agrees_with_recursive_definition_at_every_size() -> None:
    leaves = [bytes([i]) * 32 for i in range(70)]
    frontier = Frontier()
    for n in range(1, 71):
        frontier.append(leaves[n - 1])
        assert frontier.root() == merkle_root(leaves[:n])
        assert Frontier(frontier.size, frontier.nodes).root() == frontier.root()
