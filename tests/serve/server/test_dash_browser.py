"""The dashboard in a real headless Chromium (selenium + Debian's chromedriver) against a real gateway on loopback:
sign in with a key, see whose traffic the view is (this worker's: no Redis), watch clean traffic, a drifted batch
and denied requests arrive, check the page fits a phone and a desktop, sign out. Skipped where chromium or
chromedriver is missing (`apt-get install -y chromium chromium-driver`). With
``MODELSHIELD_DASH_SCREENSHOTS=docs/img`` the screenshots for the docs are written there.
"""

from __future__ import annotations

import os
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.cli.serve import DEMO_GUARD
from modelshield.core.datasets import sklearn_dataset
from tests.conftest import RunMain
from tests.serve.security.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures: Redis started if down
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None, reason="needs chromium and chromedriver")


@pytest.fixture(scope="module")
def gateway(
    weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A gateway set up as the demo: the same guard (abstain), live monitoring on short windows."""
    path, digest = weights
    state = make_state(tmp_path_factory.mktemp("dash"), {"alice": ["predictor"], "admin": ["admin"]}, "restricted")
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        guard=tomllib.loads(DEMO_GUARD)["guard"],
        monitor={
            "reference_data": "sklearn:digits:train",
            "window": 300,
            "min_rows": 100,
            "check_seconds": 0.2,
            "bucket_seconds": 2.0,
        },
        rate_limits={"per_identity_rps": 1000, "per_identity_burst": 1000},
    )
    with running(config) as url:
        yield url, state.keys


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"the dashboard never showed {what}"
        time.sleep(0.1)


def shoot(driver: object, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MODELSHIELD_DASH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    driver.save_screenshot(str(out))  # type: ignore[attr-defined]
    return out


def test_a_user_watches_the_served_model_in_the_browser(
    gateway: tuple[str, dict[str, str]], browser: Any, tmp_path: Path, run_main: RunMain
) -> None:
    from selenium.webdriver.common.by import By

    url, keys = gateway
    d = browser
    text = lambda element_id: d.find_element(By.ID, element_id).text  # noqa: E731
    d.get(f"{url}/admin/dashboard")
    wait_for(lambda: d.find_element(By.ID, "login").is_displayed(), "the sign-in form")
    d.find_element(By.ID, "key").send_keys(keys["admin"])
    d.find_element(By.ID, "signin").click()
    wait_for(lambda: d.find_element(By.ID, "dashboard").is_displayed(), "the dashboard after signing in")
    assert keys["admin"] not in d.current_url and d.find_element(By.ID, "key").get_attribute("value") == ""
    assert all(c.get("httpOnly") for c in d.get_cookies() if c["name"] == "modelshield_session")

    test = sklearn_dataset("digits", "test", seed=0).x.numpy()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['alice']}"}, timeout=30) as client:
        for start in range(0, 300, 10):  # small batches: most pass the guard whole (5% of clean inputs abstain)
            assert client.post("/v1/models/demo/predict", json={"inputs": test[start : start + 10].tolist()}).is_success
        wait_for(lambda: text("drift-status") == "no drift" and int(text("stat-requests")) >= 30, "clean traffic")
        # no Redis here: the page and the terminal view both say the numbers are this worker's share only
        assert text("scope").startswith("this worker only: no Redis configured")
        (tmp_path / "admin.key").write_text(keys["admin"])
        code, out, err = run_main("dashboard", "--target", url, "--key-file", str(tmp_path / "admin.key"))
        assert code == 0 and "\nthis worker only: no Redis configured" in out, err
        time.sleep(2.1)  # the next window
        shifted = np.clip(test[:300] + np.random.default_rng(0).uniform(-0.3, 0.3, test[:300].shape), 0, 1)
        for start in range(0, 300, 50):
            assert client.post(
                "/v1/models/demo/predict", json={"inputs": shifted[start : start + 50].tolist()}
            ).is_success
    for _ in range(4):
        httpx.post(
            f"{url}/v1/models/demo/predict",
            json={"inputs": test[:1].tolist()},
            headers={"Authorization": "Bearer msk_bad"},
        )
    wait_for(lambda: text("drift-status") == "DRIFT", "the drift")
    wait_for(lambda: int(text("stat-denied")) == 4, "the denials")
    wait_for(lambda: "monitor.drift" in text("events"), "the drift alert in the alert list")
    assert "abstained" in text("stat-guard-detail") and int(text("stat-guard").split("/")[1]) >= 1
    assert "alarm" in (d.find_element(By.ID, "drift-card").get_attribute("class") or "")
    assert d.find_elements(By.CSS_SELECTOR, "#traffic-chart rect.bar-refused")
    assert d.find_elements(By.CSS_SELECTOR, "#drift-chart polyline.drift-line")
    wait_for(
        lambda: bool(d.find_elements(By.CSS_SELECTOR, "#drift-chart rect.both")), "a window with drift and denials"
    )
    assert "with both" in text("correlation")
    assert shoot(d, "dash_desktop.png", tmp_path).stat().st_size > 20_000

    d.set_window_size(390, 844)
    time.sleep(0.3)
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert shoot(d, "dash_phone.png", tmp_path).stat().st_size > 10_000
    d.set_window_size(1280, 1000)

    d.find_element(By.ID, "signout").click()
    wait_for(lambda: d.find_element(By.ID, "login").is_displayed(), "the sign-in form after signing out")
    d.refresh()
    wait_for(lambda: d.find_element(By.ID, "login").is_displayed(), "the sign-in form after a reload")


def test_with_redis_the_page_says_it_shows_the_fleet_and_who_evaluated_it(
    weights: tuple[Path, str],
    tmp_path: Path,
    browser: Any,
    run_main: RunMain,
    redis_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    path, digest = weights
    state = make_state(tmp_path, {"admin": ["admin"]}, "restricted")
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        monitor={"reference_data": "sklearn:digits:train", "window": 300, "min_rows": 20, "check_seconds": 0.2},
        rate_limits={"redis_url": redis_url, "redis_prefix": redis_prefix},
    )
    test = sklearn_dataset("digits", "test", seed=0).x.numpy()[:40].tolist()
    d = browser
    with running(config) as url:
        headers = {"Authorization": f"Bearer {state.keys['admin']}"}
        assert httpx.post(f"{url}/v1/models/demo/predict", json={"inputs": test}, headers=headers).is_success
        d.get(f"{url}/admin/dashboard")  # signs in while the first flush and fleet check land
        wait_for(lambda: d.find_element(By.ID, "login").is_displayed(), "the sign-in form")
        d.find_element(By.ID, "key").send_keys(state.keys["admin"])
        d.find_element(By.ID, "signin").click()
        view = lambda: httpx.get(f"{url}/v1/admin/monitor", headers=headers).json()  # noqa: E731
        wait_for(lambda: bool(view()["models"]["demo"].get("evaluated_by")), "a fleet verdict")
        d.refresh()  # the next poll now, not in up to 2 s
        scope = lambda: d.find_element(By.ID, "scope").text  # noqa: E731
        line = f"fleet view: 1 worker, evaluated by {view()['worker']}"
        wait_for(lambda: scope() == line, "the fleet scope")
        (tmp_path / "admin.key").write_text(state.keys["admin"])
        code, out, err = run_main("dashboard", "--target", url, "--key-file", str(tmp_path / "admin.key"))
        assert code == 0 and f"\n{line}" in out, err
