"""casbin rule conditions compiled once, for the policies that use the ``cond(p.cond, r.sub, r.obj, r.act, r.env)``
matcher style (the gateway's and the data-access check's).

Casbin's own ``eval()`` re-parses a rule's condition for every rule on every request; here each distinct
condition is parsed once, with the policy's functions bound, and the returned ``cond`` evaluates it against the
request's attribute bags. ``"true"`` is a condition that always holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelshield.core.errors import DependencyError, InputError

Condition = Callable[[str, Any, Any, str, Any], bool]


def compile_conditions(texts: Iterable[str], functions: Mapping[str, Callable[..., Any]]) -> Condition:
    """``cond(text, sub, obj, act, env)`` for every condition in ``texts``; ``InputError`` names one that does not
    parse. ``functions`` are the names a condition may call."""
    try:
        from casbin.core_enforcer import CoreEnforcer
        from casbin.util import escape_assertion
    except ImportError:
        raise DependencyError("casbin policies need pycasbin", hint="pip install 'modelshield[serve]'") from None
    compiled: dict[str, Any] = {}
    for text in texts:
        if text in compiled:
            continue
        try:
            compiled[text] = (
                True if text == "true" else CoreEnforcer._get_expression(escape_assertion(text), dict(functions))
            )
        except SyntaxError as exc:
            raise InputError(f"condition {text!r} is not a valid expression ({exc.msg})") from None

    def cond(text: str, sub: Any, obj: Any, act: str, env: Any) -> bool:
        expression = compiled[text]
        return expression is True or bool(expression.eval({"r_sub": sub, "r_obj": obj, "r_act": act, "r_env": env}))

    return cond


__all__ = ["Condition", "compile_conditions"]
