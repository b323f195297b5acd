"""Governance: lineage from source records to predictions, the registry's serving history, model cards,
datasheets, the model inventory and the per-model security metrics.

Each module is self-contained (``lineage``, ``history``, ``cards``, ``datasheet``, ``inventory``, ``metrics``);
import the one you need, so that reading the registry's history does not load the lineage schema.
"""
