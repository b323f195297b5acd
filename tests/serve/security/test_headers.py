"""Request edges at the library level: a header the gateway acts on comes once, and bodies are plain UTF-8 JSON."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from modelshield.serve.auth import Authenticator
from modelshield.serve.errors import AuthenticationError, RequestValidationError
from modelshield.serve.headers import header_values, one_header, require_json_body
from modelshield.serve.validation import parse_json


def raw(*pairs: tuple[str, str]) -> Headers:
    """Headers as they arrive on the wire (ASGI: lower-case names, repeats kept, in order)."""
    return Headers(raw=[(k.lower().encode(), v.encode()) for k, v in pairs])


def test_every_copy_of_a_header_is_seen_whatever_its_case() -> None:
    assert header_values(raw(("X-Purpose", "a"), ("x-purpose", "b")), "X-PURPOSE") == ["a", "b"]
    assert header_values({"Authorization": "a", "authorization": "b"}, "authorization") == ["a", "b"]
    assert one_header({"X-Purpose": "a"}, "x-purpose") == "a" and one_header({}, "x-purpose") is None
    with pytest.raises(RequestValidationError, match="send the x-purpose header once, not 2 times") as info:
        one_header(raw(("X-Purpose", "a"), ("X-Purpose", "a")), "x-purpose")
    assert info.value.status == 400


def test_a_credential_header_sent_twice_is_refused_before_any_key_is_looked_at(store) -> None:
    _, key = store.create("alice", ["predictor"])
    auth = Authenticator(api_keys=store)
    assert auth.authenticate(raw(("Authorization", f"Bearer {key}"))).subject == "alice"
    for headers in (
        raw(("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {key}")),
        raw(("Authorization", f"Bearer {key}"), ("Authorization", "Bearer msk_forged")),
        raw(("Authorization", "Bearer msk_forged"), ("Authorization", f"Bearer {key}")),
        raw(("X-API-Key", key), ("X-API-Key", key)),
        {"Authorization": f"Bearer {key}", "authorization": f"Bearer {key}"},
    ):
        with pytest.raises(AuthenticationError, match=r"send one (Authorization|X-API-Key) header, not 2"):
            auth.authenticate(headers)


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({}, 415, "no Content-Type"),
        ({"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not accepted"),
        ({"Content-Type": "application/jsonx"}, 415, "send application/json"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "charset 'latin-1' is not accepted"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, 415, "Content-Encoding 'gzip'"),
        ({"Content-Type": "application/json", "Content-Encoding": "x\x01y"}, 415, "Content-Encoding (unprintable)"),
        ({"Content-Type": "application/json", "Transfer-Encoding": "gzip, chunked"}, 415, "Transfer-Encoding 'gzip'"),
    ],
)
def test_bodies_that_are_not_plain_json_are_415(headers: dict[str, str], status: int, message: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        require_json_body(headers)
    assert info.value.status == status and message in str(info.value)


def test_plain_json_passes() -> None:
    for content_type in (
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
    ):
        require_json_body({"Content-Type": content_type})
    require_json_body(
        {"Content-Type": "application/json", "Content-Encoding": "identity", "Transfer-Encoding": "chunked"}
    )


def test_repeated_keys_and_non_utf8_bodies_are_not_json() -> None:
    assert parse_json(b'{"inputs": [[1, 2]], "a": {"b": 1}}', 8) == {"inputs": [[1, 2]], "a": {"b": 1}}
    for body in (b'{"inputs": [], "inputs": [[1]]}', b'{"a": {"b": 1, "b": 2}}'):
        with pytest.raises(RequestValidationError, match="repeats an object key") as info:
            parse_json(body, 8)
        assert info.value.status == 400
    with pytest.raises(RequestValidationError, match="not valid JSON"):
        parse_json('{"inputs": [[1]]}'.encode("utf-16"), 8)
