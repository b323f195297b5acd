"""Attacks on ML models: evasion, poisoning, privacy (membership and attribute inference, inversion); extraction follows."""
