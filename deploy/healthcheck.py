"""Container HEALTHCHECK without a shell or curl: GET /healthz on the gateway's own loopback port.

Tries HTTPS on 8443 first, then HTTP on 8000 (or the URL in $MODELSHIELD_HEALTH_URL). The TLS
certificate is not verified: this only asks the process in this container whether it is alive,
over loopback, and carries no credentials. Exit 0 when it answers 200, 1 otherwise.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request

URLS = ("https://127.0.0.1:8443/healthz", "http://127.0.0.1:8000/healthz")


def healthy(url: str) -> bool:
    context = ssl._create_unverified_context()  # noqa: S323 - loopback liveness check, no credentials sent
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:  # noqa: S310 - fixed local URLs
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    urls = (os.environ["MODELSHIELD_HEALTH_URL"],) if os.environ.get("MODELSHIELD_HEALTH_URL") else URLS
    sys.exit(0 if any(healthy(url) for url in urls) else 1)
