"""Privacy: differentially private training (``privacy.dp``) and privacy auditing (``privacy.audit``).

Models memorise their training data; this package trains them so that the leak is bounded
(DP-SGD with an accountant) and measures what leaks anyway.
"""
