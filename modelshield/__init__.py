"""modelshield: secure machine-learning systems across their whole life."""

__version__ = "0.1.0"
