"""The two keys the watermark tests use: the owner's, and an unrelated party's."""

OWNER_KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
