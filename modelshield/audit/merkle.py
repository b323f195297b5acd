"""RFC 6962 / RFC 9162 Merkle tree hashes over the audit records, built incrementally.

Leaves are ``SHA-256(0x00 || record hash)``, interior nodes ``SHA-256(0x01 || left || right)`` (the domain
separation stops a leaf from posing as a node). The tree over ``n`` leaves splits at the largest power of
two below ``n``, so it is a row of perfect subtrees of decreasing size; ``Frontier`` keeps just those
subtree roots (at most log2 n of them), appends in amortised O(1) and yields the root of the whole tree
at any size without re-reading old records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """The tree hash of ``leaves`` by the RFC's recursive definition (a reference for ``Frontier``)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(merkle_root(leaves[:split]), merkle_root(leaves[split:]))


class Frontier:
    """The roots of the perfect subtrees that make up a tree of ``size`` leaves, largest first."""

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)
        if len(self.nodes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} nodes, got {len(self.nodes)}")

    def append(self, data: bytes) -> None:
        """Add one leaf: merge equal-sized subtrees like carrying in binary addition."""
        node = leaf_hash(data)
        size = self.size
        while size & 1:
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def extend(self, items: Iterable[bytes]) -> None:
        for data in items:
            self.append(data)

    def root(self) -> bytes:
        """The RFC 6962 tree hash: fold the subtree roots from the smallest (rightmost) up."""
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)
