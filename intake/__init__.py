"""Clinical intake and triage plugin: the Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intake.config import Settings, ensure_api_token, ensure_secret_key, load_settings

if TYPE_CHECKING:  # kept out of `import intake` so `intake triage` starts fast
    from celery import Celery
    from flask import Flask
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class AppState:
    """What the views need, kept on ``app.extensions['intake']``."""

    settings: Settings
    api_token: str  # /api and /metrics; from the settings or DATA_DIR/api_token
    sessions: sessionmaker[Session]
    celery: Celery | None  # None when no broker is configured: the sweeper enqueues later


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app: defaults, then INTAKE_* environment, then ``config``."""
    from flask import Flask

    from intake.audit import signing_key
    from intake.auth.passwords import use_profile
    from intake.queue import make_celery
    from intake.resources import templates_dir
    from intake.storage.db import session_factory

    settings = load_settings(overrides=config)
    configure_logging(settings.log_level)
    use_profile(settings.password_hash_profile)
    app = Flask(__name__, template_folder=str(templates_dir()))
    app.config.update(
        SECRET_KEY=ensure_secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if settings.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Trust exactly the configured proxies: the client address then feeds the
        # PIN lock-out, and the scheme marks cookies Secure.
        n = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.extensions["intake"] = AppState(
        settings=settings,
        api_token=ensure_api_token(settings),
        # Audit events recorded in these sessions are sealed with the app's key.
        sessions=session_factory(settings.database_url, audit_key=signing_key(settings)),
        celery=make_celery(settings) if settings.redis_url else None,
    )

    from intake.api import bp as api_bp
    from intake.health import bp as health_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp, url_prefix="/api")

    from intake.admin import bp as admin_bp
    from intake.auth import bp as auth_bp
    from intake.desk import bp as desk_bp
    from intake.kiosk import bp as kiosk_bp
    from intake.review import bp as review_bp

    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(kiosk_bp, url_prefix="/kiosk")
    app.register_blueprint(desk_bp, url_prefix="/desk")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(review_bp, url_prefix="/review")

    from intake.alerts.views import bp as alerts_bp
    from intake.devices.views import bp as devices_bp

    app.register_blueprint(alerts_bp)  # /board, /alerts/<id>
    app.register_blueprint(devices_bp, url_prefix="/devices")

    from intake.cds import bp as cds_bp
    from intake.fhirapi import bp as fhir_bp

    app.register_blueprint(fhir_bp, url_prefix="/fhir")
    app.register_blueprint(cds_bp, url_prefix="/cds-services")

    from werkzeug.exceptions import HTTPException

    from intake.api.views import http_error, internal_error
    from intake.fhirapi import outcome as fhir_outcome

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        from flask import request

        # /fhir answers OperationOutcome, /api and /cds-services JSON, never HTML.
        if _under(request.path, "/fhir"):
            return fhir_outcome.http_error(exc)
        if request.path.startswith("/api/") or _under(request.path, "/cds-services"):
            return http_error(exc)
        return exc

    @app.errorhandler(Exception)
    def _internal_error(exc: Exception) -> Any:
        from flask import request

        app.logger.error("unhandled %s on %s", type(exc).__name__, request_path())
        if _under(request.path, "/fhir"):
            return fhir_outcome.internal_error()
        return internal_error(exc)

    @app.after_request
    def _no_store(response: Any) -> Any:
        # Patient data must not linger in shared browser or proxy caches.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def request_path() -> str:
    """The URL rule, not the URL: ids in paths are not logged."""
    from flask import request

    return str(request.url_rule) if request.url_rule is not None else "(no route)"


def state(app: Flask | None = None) -> AppState:
    from flask import current_app

    st: AppState = (app or current_app).extensions["intake"]
    return st
