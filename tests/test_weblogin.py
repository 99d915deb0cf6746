"""--web-login puts a user name and password in front of the web UI."""

from __future__ import annotations

import http.cookiejar
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from harness.ui.web_login import PASSWORD_VARIABLE, USER_VARIABLE
from tests.conftest import ROOT, free_port, serving_web_ui

CREDENTIALS = {USER_VARIABLE: "operator", PASSWORD_VARIABLE: "s3cret-enough"}


def _browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _landed_on(browser: urllib.request.OpenerDirector, url: str, form: dict[str, str] | None = None) -> str:
    """The path the browser ends on after following redirects."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with browser.open(url, data=data, timeout=10) as response:
        return urllib.parse.urlparse(response.geturl()).path


def _log_in(browser: urllib.request.OpenerDirector, url: str, password: str) -> str:
    return _landed_on(browser, f"{url}/fleetstorm/login", {"username": "operator", "password": password})


def test_the_web_ui_asks_for_the_login_and_admits_only_the_right_password(tmp_path: Path) -> None:
    with serving_web_ui(tmp_path, "--web-login", env=CREDENTIALS) as url:
        browser = _browser()
        assert _landed_on(browser, url) == "/login"
        assert _log_in(browser, url, "wrong") == "/login"
        assert _landed_on(browser, f"{url}/stats/requests") == "/login"
        assert _landed_on(browser, f"{url}/metrics") == "/login"
        assert _log_in(browser, url, "s3cret-enough") == "/"
        assert _landed_on(browser, f"{url}/stats/requests") == "/stats/requests"
        assert _landed_on(browser, f"{url}/metrics") == "/metrics"


def test_web_login_without_credentials_is_refused_at_start_up() -> None:
    done = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", "--web-login", "--web-port",
                           str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k not in CREDENTIALS})
    assert done.returncode == 2
    assert f"--web-login: needs {USER_VARIABLE} and {PASSWORD_VARIABLE}" in done.stderr
