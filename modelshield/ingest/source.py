"""Where the data came from, proven before a record is read: its digest, its signature, its lock entry.

The checks are the ones models get on load (``modelshield.integrity.signing.onload``): an OpenSSF
model-signing signature over the file (``modelshield sign data.csv --key k.pem``) verified with the signer's
public key, and the file's entry in a provenance lock (``modelshield provenance add NAME data.csv --kind
dataset``) re-hashed. A signature with no key to check it is refused, never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelshield.core.errors import MissingFileError
from modelshield.core.settings import VerifyDefaults
from modelshield.integrity.provenance import hash_tree
from modelshield.integrity.signing.onload import check_before_load


@dataclass(frozen=True)
class SourceCheck:
    """What was proven about one input file."""

    path: Path
    digest: str
    size: int
    signature: Path | None = None
    signer: str | None = None  # key type and hint of the key that verified the signature
    lock_entries: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "digest": self.digest,
            "size": self.size,
            "signature": str(self.signature) if self.signature else None,
            "signer": self.signer,
            "lock_entries": list(self.lock_entries),
        }


def check_source(
    path: Path,
    *,
    public_key: Path | None = None,
    signature: Path | None = None,
    lock: Path | None = None,
    require_signature: bool = False,
) -> SourceCheck:
    """Digest ``path``; verify its signature and lock entry where there are any.

    Raises ``IntegrityError`` when the file differs from what was signed or pinned, or when it has no
    signature and one is required; ``InputError`` when it is signed but no key was given to check it."""
    if lock is not None and not lock.is_file():
        raise MissingFileError(f"provenance lock {lock} does not exist")
    settings = VerifyDefaults(require_signature=require_signature, lock=lock)
    checked = check_before_load(path, settings, public_key=public_key, signature=signature, allow_unverified=False)
    tree = hash_tree(path)
    verified = checked.signature
    return SourceCheck(
        path=path,
        digest=tree.digest,
        size=tree.size,
        signature=verified.signature if verified else None,
        signer=f"{verified.key_type} {verified.key_hint[:16]}" if verified else None,
        lock_entries=checked.lock_entries,
    )
