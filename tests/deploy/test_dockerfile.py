"""deploy/Dockerfile, linted in Python (no Docker engine here), and its shell-free health check run for real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
Instruction = tuple[str, str]


def parse(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def lint(instructions: list[Instruction]) -> list[str]:
    """Every problem found; empty means the image follows the hardening rules of deploy/README.md."""
    problems = []
    args = {}
    stages: list[list[Instruction]] = []
    for word, rest in instructions:
        if word == "ARG" and "=" in rest and not stages:
            name, _, value = rest.partition("=")
            args[name] = value
        if word == "FROM":
            stages.append([])
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            name = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in name or name.endswith(":latest")):
                problems.append(f"FROM {image}: pin a tag (not latest) or a digest")
        if stages:
            stages[-1].append((word, rest))
        if word == "ADD" and re.search(r"https?://", rest):
            problems.append(f"ADD from a URL: {rest}")
        if word in ("ENV", "ARG") and re.search(r"(PASSWORD|SECRET|TOKEN|PEPPER|PRIVATE_KEY)\w*=", rest, re.I):
            problems.append(f"{word} holds a secret: {rest}")
    final = stages[-1] if stages else []
    users = [i for i, (word, _) in enumerate(final) if word == "USER"]
    starts = [i for i, (word, _) in enumerate(final) if word in ("CMD", "ENTRYPOINT")]
    if not users or not starts or users[-1] > min(starts):
        problems.append("the final stage must set USER before CMD/ENTRYPOINT")
    elif re.match(r"^(0|root)(:|$)", final[users[-1]][1]) or not final[users[-1]][1].split(":")[0].isdigit():
        problems.append(f"USER {final[users[-1]][1]}: run as a numeric non-root uid")
    for word, rest in final:
        if word in ("CMD", "ENTRYPOINT") and not rest.startswith("["):
            problems.append(f"{word} in shell form needs a shell at run time: {rest}")
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    if not health or "CMD [" not in health[0]:
        problems.append("no HEALTHCHECK in exec form")
    installs = " ".join(rest for word, rest in instructions if word == "RUN")
    if not re.search(r"--index-url https://download\.pytorch\.org/whl/cpu torch==2\.13\.0\b", installs):
        problems.append("torch must be pinned: torch==2.13.0 from the PyTorch CPU index")
    return problems


def test_the_dockerfile_passes_the_lint() -> None:
    instructions = parse((DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    assert lint(instructions) == []
    words = [word for word, _ in instructions]
    assert words.count("FROM") == 2  # multi-stage: build tools never reach the runtime image
    exposed = {port for word, rest in instructions if word == "EXPOSE" for port in rest.split()}
    assert exposed == {"8000", "8443"}
    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    assert ("USER", "10001:10001") in final
    entry = json.loads(next(rest for word, rest in final if word == "ENTRYPOINT"))
    assert entry[0].endswith("/bin/modelshield") and entry[1:] == ["serve"]
    assert "ADD" not in words


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ('FROM python:latest\nUSER 10001\nCMD ["x"]', "pin a tag"),
        ('FROM python\nUSER 10001\nCMD ["x"]', "pin a tag"),
        ('FROM python:3.11-slim\nCMD ["x"]\nUSER 10001', "USER before CMD"),
        ('FROM python:3.11-slim\nUSER root\nCMD ["x"]', "non-root"),
        ('FROM python:3.11-slim\nADD https://example.com/x.tgz /x\nUSER 1\nCMD ["x"]', "ADD from a URL"),
        ("FROM python:3.11-slim\nUSER 1\nCMD modelshield serve", "shell form"),
        ('FROM python:3.11-slim\nENV API_TOKEN=abc\nUSER 1\nCMD ["x"]', "holds a secret"),
        ('FROM python:3.11-slim\nRUN pip install torch\nUSER 1\nCMD ["x"]', "torch must be pinned"),
    ],
)
def test_the_lint_catches_each_mistake(bad: str, problem: str) -> None:
    assert any(problem in p for p in lint(parse(bad)))


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**" in ignore  # deny everything, then allow what COPY needs
    copied = {
        rest.split()[0]
        for word, rest in parse((DEPLOY / "Dockerfile").read_text())
        if word == "COPY" and not rest.startswith("--from")
    }
    allowed = {line[1:].removesuffix("/**") for line in ignore if line.startswith("!")}
    assert copied <= allowed | {"modelshield"}, copied - allowed


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_healthcheck_script_exits_by_the_gateway_answer(
    health_server: ThreadingHTTPServer, status: int, code: int
) -> None:
    _Health.status = status
    url = f"http://127.0.0.1:{health_server.server_address[1]}/healthz"
    env = {"MODELSHIELD_HEALTH_URL": url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-I", str(DEPLOY / "healthcheck.py")], env=env, timeout=30)
    assert proc.returncode == code


def test_healthcheck_fails_when_nothing_listens() -> None:
    env = {"MODELSHIELD_HEALTH_URL": "http://127.0.0.1:9/healthz", "PATH": "/usr/bin:/bin"}
    assert subprocess.run([sys.executable, "-I", str(DEPLOY / "healthcheck.py")], env=env, timeout=30).returncode == 1
