"""`kill -9` a process in the middle of appending: every seq it saw returned is in the log, and the log verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog

CHILD = """
import sys, threading
from modelshield.audit import AuditLog
log = AuditLog.open(sys.argv[1])
out = threading.Lock()
def work(t):
    i = 0
    while True:
        seq = log.append({"action": "predict", "thread": t, "i": i, "input_digest": "00" * 32})
        with out:
            sys.stdout.write(f"{seq}\\n"); sys.stdout.flush()
        i += 1
threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
for t in threads: t.start()
threads[0].join()
"""


def test_kill_9_mid_stream_loses_no_returned_append(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), db_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    returned: list[int] = []
    for line in child.stdout:
        returned.append(int(line))
        if len(returned) >= 200:
            child.send_signal(signal.SIGKILL)
            break
    returned.extend(int(line) for line in child.stdout)  # lines already in the pipe were returned too
    assert child.wait(timeout=30) == -signal.SIGKILL
    key = Ed25519PrivateKey.generate()
    with AuditLog.open(db_url) as log:
        report = log.verify(key.public_key())
        after = log.append({"action": "after-crash"})
    assert report.ok, report.problems
    assert set(returned) <= set(range(1, report.head_seq + 1)) and len(set(returned)) == len(returned)
    assert after == report.head_seq + 1
