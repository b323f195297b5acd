"""``modelshield dashboard``: open a gateway's live dashboard, or print its monitoring view in the terminal.

The dashboard is served by the gateway itself (``/admin/dashboard``, behind its auth: the page asks for a key with
``monitor.read`` and trades it for an HttpOnly session cookie), so this command only checks that the gateway
answers and opens the page in a browser. With ``--key-file`` it reads ``/v1/admin/monitor`` instead and prints the
per-model summary (or the JSON), for terminals and scripts; the key is sent in a header, never in the URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modelshield.core.errors import InputError, MissingFileError, RemoteModelError


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    import httpx

    try:
        response = httpx.get(url, headers=headers or {}, timeout=10.0)
    except httpx.HTTPError as exc:
        raise RemoteModelError(f"cannot reach the gateway at {url}: {exc}") from None
    if response.status_code in (401, 403):
        raise InputError(f"the gateway refused the key ({response.status_code}): it needs the monitor.read permission")
    if response.status_code != 200:
        raise RemoteModelError(f"{url} answered {response.status_code}")
    return response


def _scope_line(view: dict[str, Any]) -> str | None:
    """Whose traffic the numbers are: the whole fleet's (and which process evaluated drift) or this worker's only,
    so an operator behind a balancer does not read one replica's share as the total. None from a gateway that
    predates the field."""
    if view.get("scope") == "fleet":
        evaluators = sorted({m["evaluated_by"] for m in view["models"].values() if m.get("evaluated_by")})
        n = view["workers"]
        return (
            f"fleet view: {n} worker{'' if n == 1 else 's'}, evaluated by {', '.join(evaluators) or 'no process yet'}"
        )
    if view.get("scope") == "worker":
        return f"this worker only: {view.get('scope_reason')}"
    return None


def _summary(view: dict[str, Any]) -> str:
    lines = []
    for name, m in view["models"].items():
        b = m["buckets"]
        total = {k: sum(x.get(k, 0) for x in b) for k in ("requests", "samples", "denied", "rate_limited")}
        guard = sum(x.get("guard_reject", 0) for x in b), sum(x.get("guard_fallback", 0) for x in b)
        last = m["last_check"] or {}
        if not m["monitored"]:
            drift = "drift: off (no reference)"
        elif "drift" not in last:
            drift = f"drift: waiting ({m['seen']} inputs seen)"
        else:
            drift = (
                f"drift: {'YES' if last['drift'] else 'no'} ({last['drifted']}/{last['features']} features, "
                f"min p {last['min_p']:.2g}), {len(m['alarms'])} output alarms"
            )
        c = m["correlation"]
        lines.append(
            f"{name}: {total['requests']} requests ({total['samples']} inputs), {total['denied']} denied, "
            f"{total['rate_limited']} rate-limited, guard {guard[0]} refused / {guard[1]} abstained\n  {drift}\n"
            f"  windows: {c['flagged_windows']} flagged, {c['security_windows']} with security events, "
            f"{len(c['co_occurring'])} with both"
        )
    scope = _scope_line(view)
    if scope:
        lines.append(scope)
    events = view.get("events", [])[:10]
    if events:
        lines.append("recent alerts:")
        lines.extend(
            f"  {e['action']}  {e.get('model') or ''}  {e.get('reason') or e.get('decision') or ''}" for e in events
        )
    return "\n".join(lines)


def dashboard_command(
    target: Annotated[str, typer.Option("--target", help="The gateway's base URL.")] = "http://127.0.0.1:8000",
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="A file holding a key with monitor.read: print the view instead of opening."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --key-file: print the view as JSON.")] = False,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = True,
) -> None:
    """Open the gateway's live dashboard (drift, traffic, denials, guard decisions, alerts), or print its view."""
    base = target.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"--target must be an http(s) URL, not {target!r}")
    if key_file is not None:
        if not key_file.is_file():
            raise MissingFileError(f"{key_file} does not exist")
        key = key_file.read_text(encoding="utf-8").strip()
        view = _get(f"{base}/v1/admin/monitor", {"Authorization": f"Bearer {key}"}).json()
        typer.echo(json.dumps(view, indent=2) if as_json else _summary(view))
        return
    if as_json:
        raise InputError("--json needs --key-file")
    _get(f"{base}/healthz")
    page = f"{base}/admin/dashboard"
    _get(page)
    typer.echo(f"dashboard: {page}  (sign in with a key that has monitor.read, e.g. the demo's admin key)")
    if open_browser:
        import webbrowser

        webbrowser.open(page)


def register(app: typer.Typer) -> None:
    """Add ``modelshield dashboard``."""
    app.command("dashboard")(dashboard_command)
