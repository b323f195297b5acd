"""Monitoring: data drift against a stored reference sketch, and sequential alarms on a model's outputs."""
