"""Security assessments: run attacks on a model and data, and turn the numbers into findings."""
