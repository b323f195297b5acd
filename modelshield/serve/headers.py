"""The request headers the gateway acts on: each sent at most once, and bodies only as plain JSON.

HTTP lets a header repeat, and the parts of a deployment disagree on which copy counts: Starlette's
``headers.get`` returns the first, many proxies and WAFs check the last. A gateway that acts on a header
some other hop judged by its other copy can be talked past, so a header the gateway acts on must come
once (credential headers are refused with 401 by ``modelshield.serve.auth``, the others here with 400).

A predict body is read as JSON exactly as sent: a body declared as anything but ``application/json``
(UTF-8), or sent with a ``Content-Encoding`` or a ``Transfer-Encoding`` other than ``chunked`` (gzip, ...;
httptools would pass such a body through still compressed), is refused with 415 before it is read. The
gateway never inflates a body (a compressed body is a decompression bomb waiting for a size cap to be
checked on the wrong side), and a body declared as another type was meant to be read another way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modelshield.serve.errors import RequestValidationError

JSON_MEDIA_TYPE = "application/json"
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~/-]{1,64}")


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value sent for header ``name`` (case-insensitive), in order; works on Starlette's Headers and dicts."""
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        return [str(v) for v in getlist(name)]
    lowered = name.lower()
    return [v for k, v in headers.items() if k.lower() == lowered]


def one_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, None when absent; a 400 when it is sent more than once."""
    values = header_values(headers, name)
    if len(values) > 1:
        raise RequestValidationError(f"send the {name} header once, not {len(values)} times", status=400)
    return values[0] if values else None


def _shown(value: str) -> str:
    """A header value safe to echo in an error message and the audit log (a bare token, else a placeholder)."""
    value = value.strip()
    return repr(value) if _TOKEN.fullmatch(value) else "(unprintable)"


def require_json_body(headers: Mapping[str, str]) -> None:
    """Refuse (415) a body the gateway would have to guess about: compressed, or not declared as UTF-8 JSON."""
    encoding = one_header(headers, "content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise RequestValidationError(
            f"Content-Encoding {_shown(encoding)} is not accepted: send the JSON body uncompressed", status=415
        )
    codings = [c.strip() for v in header_values(headers, "transfer-encoding") for c in v.split(",") if c.strip()]
    for coding in codings:
        if coding.lower() != "chunked":
            raise RequestValidationError(
                f"Transfer-Encoding {_shown(coding)} is not accepted: send the JSON body uncompressed "
                "(chunked is fine)",
                status=415,
            )
    content_type = one_header(headers, "content-type")
    if content_type is None:
        raise RequestValidationError(f"the body has no Content-Type: send {JSON_MEDIA_TYPE}", status=415)
    media, *params = content_type.split(";")
    if media.strip().lower() != JSON_MEDIA_TYPE:
        raise RequestValidationError(
            f"Content-Type {_shown(media)} is not accepted: send {JSON_MEDIA_TYPE}", status=415
        )
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestValidationError(
                f"charset {_shown(value.strip())} is not accepted: JSON is sent as UTF-8", status=415
            )
