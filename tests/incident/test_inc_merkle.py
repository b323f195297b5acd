"""RFC 9162 inclusion and consistency proofs (audit.merkle) against the RFC's recursive tree hash."""

from __future__ import annotations

import hashlib

import pytest

from modelshield.audit.merkle import MerkleTree, merkle_root, verify_consistency, verify_inclusion


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("n", [*range(1, 34), 127, 128, 129])
def test_every_inclusion_and_consistency_proof_verifies_and_wrong_ones_do_not(n: int) -> None:
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    root = tree.root()
    assert root == merkle_root(leaves)
    for i in range(n):
        proof = tree.inclusion_proof(i)
        assert verify_inclusion(leaves[i], i, n, proof, root)
        if n > 1:
            assert not verify_inclusion(leaves[(i + 1) % n], i, n, proof, root)
    for m in range(1, n + 1):
        old = merkle_root(leaves[:m])
        proof = tree.consistency_proof(m)
        assert verify_consistency(m, n, old, root, proof)
        if m < n:
            assert not verify_consistency(m, n, merkle_root(leaves[1 : m + 1]), root, proof)
            assert not verify_consistency(m, n, old, root, proof[:-1])
            assert not verify_consistency(m - 1 or 1, n, old, root, proof) or m == 1


def test_rfc9162_proof_sizes() -> None:
    """RFC 6962 section 2.1.3's example tree of 7 leaves: audit paths of 3 nodes (2 for the last leaf); consistency
    proofs from 3, 4 and 6 leaves of 4 ([c, d, g, l]), 1 ([l]) and 3 ([i, j, k]) nodes."""
    tree = MerkleTree(_leaves(7))
    assert [len(tree.inclusion_proof(i)) for i in range(7)] == [3, 3, 3, 3, 3, 3, 2]
    assert [len(tree.consistency_proof(m)) for m in (3, 4, 6)] == [4, 1, 3]


def test_proofs_verify_with_sigstore_pythons_independent_verifier() -> None:
    """Interoperability: sigstore-python's Trillian-derived Rekor verifier accepts our audit paths."""
    sm = pytest.importorskip("sigstore._internal.merkle")
    leaves = _leaves(1000)
    tree = MerkleTree(leaves)
    for i in (0, 1, 511, 512, 998, 999):
        proof = tree.inclusion_proof(i)
        inner, border = sm._decomp_inclusion_proof(i, 1000)
        assert len(proof) == inner + border
        seed = sm._chain_inner(sm._hash_leaf(leaves[i]), proof[:inner], i)
        assert sm._chain_border_right(seed, proof[inner:]) == tree.root()


@pytest.mark.parametrize("n", [1, 2, 7, 33, 128, 1000])
def test_proofs_checked_with_a_shared_memo_give_the_same_verdicts(n: int) -> None:
    """With ``proven`` shared, every good proof still passes and every wrong one (a wrong leaf, a wrong sibling at
    any level, a proof cut short or extended) still fails, whatever was proven before it."""
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    root = tree.root()
    proven: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...]]] = {}
    for i in range(n):
        proof = tree.inclusion_proof(i)
        for level in range(len(proof)):
            bad = [*proof[:level], hashlib.sha256(proof[level]).digest(), *proof[level + 1 :]]
            assert not verify_inclusion(leaves[i], i, n, bad, root, proven)
        assert not verify_inclusion(leaves[i], i, n, proof[:-1], root, proven) or not proof
        assert not verify_inclusion(leaves[i], i, n, [*proof, root], root, proven)
        assert not verify_inclusion(hashlib.sha256(leaves[i]).digest(), i, n, proof, root, proven)
        assert verify_inclusion(leaves[i], i, n, proof, root, proven)
    assert all(verify_inclusion(leaves[i], i, n, tree.inclusion_proof(i), root, proven) for i in range(n))
