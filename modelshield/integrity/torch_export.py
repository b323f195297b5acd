"""``torch.export.save`` archives (``.pt2``): their raw weight and constant files are tensor bytes.

A ``.pt2`` zip names itself (``<folder>/archive_format`` holds ``pt2``) and lists each weight and constant
in ``data/weights/model_weights_config.json`` / ``data/constants/model_constants_config.json``: one with
``use_pickle: false`` is read back as raw bytes of the declared dtype and shape, never interpreted; one
with ``use_pickle: true`` is a ``torch.save`` file, which the scanner recognises and judges as such. So
bytes under ``data/weights/`` or ``data/constants/`` that match no format are opaque data there, as are
the archive's small records torch reads as text (``archive_format``, ``archive_version``, ``byteorder``,
``.data/version``, ``.data/serialization_id``).
"""

from __future__ import annotations

import re

_OPAQUE = re.compile(
    r"(^|!)[^/!]+/(data/(weights|constants)/[^/!]+|archive_format|archive_version|byteorder|\.data/[^/!]+)$"
)


def is_pt2(names: list[str]) -> bool:
    """A zip written by ``torch.export.save``: an ``archive_format`` member beside ``models/`` and ``data/``."""
    return any(n.endswith("/archive_format") or n == "archive_format" for n in names) and any(
        "/models/" in n or n.startswith("models/") for n in names
    )


def is_opaque(where: str) -> bool:
    """A member holding a weight or constant's bytes, or a record torch reads as text (``where`` ends in its name)."""
    return bool(_OPAQUE.search(where))
