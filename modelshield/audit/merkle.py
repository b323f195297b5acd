"""RFC 6962 / RFC 9162 Merkle tree hashes over the audit records, built incrementally.

Leaves are ``SHA-256(0x00 || record hash)``, interior nodes ``SHA-256(0x01 || left || right)`` (the domain
separation stops a leaf from posing as a node). The tree over ``n`` leaves splits at the largest power of
two below ``n``, so it is a row of perfect subtrees of decreasing size; ``Frontier`` keeps just those
subtree roots (at most log2 n of them), appends in amortised O(1) and yields the root of the whole tree
at any size without re-reading old records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes | bytearray, right: bytes | bytearray) -> bytes:
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


class MerkleTree:
    """Every level of the RFC 6962 tree over ``leaves`` (record hashes), for inclusion and consistency proofs.

    Level 0 holds the leaf hashes; each level above pairs neighbours and carries an odd last node up unchanged,
    which gives the same tree as the RFC's split at the largest power of two (node ``j`` of level ``k`` is the
    tree hash of leaves ``j * 2**k`` up to ``(j + 1) * 2**k`` or the end). Each level is one ``bytearray`` of
    32-byte hashes: about 64 bytes per leaf in all.
    """

    def __init__(self, leaves: Iterable[bytes]) -> None:
        level = bytearray()
        for data in leaves:
            level += leaf_hash(data)
        self.size = len(level) // 32
        self._levels: list[bytes | bytearray] = [level]
        while len(level) > 32:
            above = bytearray()
            for i in range(0, len(level) - 32, 64):
                above += node_hash(level[i : i + 32], level[i + 32 : i + 64])
            if (len(level) // 32) % 2:
                above += level[-32:]
            self._levels.append(above)
            level = above
        self._levels = [bytes(lv) for lv in self._levels]  # bytes: a slice is the node itself, no copy to make
        self._widths = [len(lv) // 32 for lv in self._levels]

    def _node(self, k: int, j: int) -> bytes:
        return bytes(self._levels[k][32 * j : 32 * j + 32])

    def root(self) -> bytes:
        return self._node(len(self._levels) - 1, 0) if self.size else EMPTY_ROOT

    def subtree(self, start: int, end: int) -> bytes:
        """The tree hash of leaves ``start`` to ``end`` (exclusive), from the stored levels where they hold it."""
        width = end - start
        if width <= 0 or end > self.size:
            raise ValueError(f"no subtree {start}..{end} in a tree of {self.size} leaves")
        k = (width - 1).bit_length()  # the smallest level whose nodes span at least ``width`` leaves
        if start % (1 << k) == 0 and (width == 1 << k or end == self.size):
            return self._node(k, start >> k)
        split = 1 << (k - 1)
        return node_hash(self.subtree(start, start + split), self.subtree(start + split, end))

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 audit path of leaf ``index`` (0-based) in the whole tree, leaf upwards."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is not in a tree of {self.size} leaves")
        proof = []
        for level, width in zip(self._levels[:-1], self._widths, strict=False):
            sibling = index ^ 1
            if sibling < width:
                proof.append(bytes(level[32 * sibling : 32 * sibling + 32]))
            index >>= 1
        return proof

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 proof that the tree of the first ``old_size`` leaves is a prefix of this one."""
        if not 0 < old_size <= self.size:
            raise ValueError(f"no consistency proof from size {old_size} to {self.size}")
        proof: list[bytes] = []
        self._subproof(old_size, 0, self.size, True, proof)
        return proof

    def _subproof(self, m: int, start: int, end: int, complete: bool, proof: list[bytes]) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(self.subtree(start, end))
            return
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            self._subproof(m, start, start + k, complete, proof)
            proof.append(self.subtree(start + k, end))
        else:
            self._subproof(m - k, start + k, end, False, proof)
            proof.append(self.subtree(start, start + k))


Proven = dict[tuple[int, int], tuple[bytes, tuple[bytes, ...]]]


def verify_inclusion(
    data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes, proven: Proven | None = None
) -> bool:
    """RFC 9162 section 2.1.3.2: whether ``data`` is leaf ``index`` (0-based) of the tree of ``size`` with ``root``.

    ``proven``: a dict shared across calls for one tree (one ``size`` and ``root``), for checking many proofs
    of neighbouring leaves. It remembers each node a successful proof passed through, with the rest of that
    proof; a later proof that reaches the same node with the same hash and carries the same rest is accepted
    without hashing it again, since the RFC algorithm would repeat the very same computation. A run of
    consecutive leaves then costs about two hashes each instead of log2(size).
    """
    if not 0 <= index < size:
        return False
    sha256 = hashlib.sha256  # node_hash inlined: this loop is the whole cost of checking a bundle
    fn, sn, r = index, size - 1, leaf_hash(data)
    passed: list[tuple[int, int, bytes, int]] = []
    for i, p in enumerate(proof):
        if proven is not None:
            known = proven.get((fn, sn))
            if known is not None and known[0] == r:
                ok = known[1] == tuple(proof[i:])
                break
            passed.append((fn, sn, r, i))
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    else:
        ok = sn == 0 and r == root
    if ok and proven is not None:
        for node_fn, node_sn, node, i in passed:
            proven[(node_fn, node_sn)] = (node, tuple(proof[i:]))
    return ok


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: whether the tree of ``old_size`` leaves with ``old_root`` is a prefix of the
    tree of ``new_size`` leaves with ``new_root``."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
