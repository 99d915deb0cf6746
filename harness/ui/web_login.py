"""`--web-login`: a user name and password in front of Locust's web UI, from the environment.

Locust leaves the login itself to the locustfile. fleetstorm checks one user, given as
FLEETSTORM_WEB_USER and FLEETSTORM_WEB_PASSWORD, so the controls of a load generator reachable
beyond this machine (`--web-host 0.0.0.0`) are not open to anyone who finds the port.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Blueprint, Response, redirect, request, session, url_for
from flask_login import UserMixin, login_user

from harness.config.errors import InputError

USER_VARIABLE, PASSWORD_VARIABLE = "FLEETSTORM_WEB_USER", "FLEETSTORM_WEB_PASSWORD"


class WebUser(UserMixin):
    """The one user allowed in."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name


def credentials() -> tuple[str, str]:
    """The user name and password from the environment; InputError when either is missing."""
    user, password = os.environ.get(USER_VARIABLE, ""), os.environ.get(PASSWORD_VARIABLE, "")
    if not user or not password:
        raise InputError("--web-login", f"needs {USER_VARIABLE} and {PASSWORD_VARIABLE} in the environment",
                         f"export {USER_VARIABLE}=... {PASSWORD_VARIABLE}=... before starting")
    return user, password


def install(environment: Any) -> None:
    """Guard the web UI with the login form, checking against credentials()."""
    user, password = credentials()
    web_ui = environment.web_ui
    base = environment.parsed_options.web_base_path
    web_ui.app.config["SECRET_KEY"] = os.urandom(32)
    web_ui.login_manager.user_loader(lambda name: WebUser(name) if name == user else None)
    web_ui.auth_args = {"username_password_callback": f"{base}/fleetstorm/login"}
    blueprint = Blueprint("fleetstorm_login", __name__, url_prefix=base)

    @blueprint.route("/fleetstorm/login", methods=["POST"])
    def login_submit() -> Response:
        given_user = request.form.get("username", "")
        given_password = request.form.get("password", "")
        if hmac.compare_digest(given_user, user) and hmac.compare_digest(given_password, password):
            login_user(WebUser(user))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(blueprint)
