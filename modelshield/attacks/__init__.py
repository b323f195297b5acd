"""Attacks on ML models: evasion today; poisoning, privacy and extraction follow."""
