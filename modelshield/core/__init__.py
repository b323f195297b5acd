"""The core vocabulary every capability speaks: models, datasets, findings, settings, errors."""
