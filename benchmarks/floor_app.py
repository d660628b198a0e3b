"""The floor: podgate's server with the policy engine taken out, for the ratio the targets are stated in.

    PODGATE_CERT=... PODGATE_KEY=... PODGATE_BIND=... .venv/bin/python benchmarks/floor_app.py

It is `webhook.server.serving.WebhookServer` built from the same settings as `podgate serve` (podgate's
gunicorn worker, its threads, keep-alive, TLS context hook, preload, log configuration, reload poller), with
one change: its WSGI app is the minimal Flask app below, which reads the body, decodes it with
`parse_review` (the part of the work no webhook can skip) and admits. Whatever podgate costs above
this floor is the engine, its logging and its metrics; whatever the floor costs is Python, Flask,
gunicorn and TLS, which a faster engine cannot remove.
"""

from __future__ import annotations

import os

import benchlib  # noqa: F401  (puts the repository on sys.path)
from flask import Flask, Response, request

from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.server.review import parse_review

JSON = "application/json"


def create_floor_app() -> Flask:
    app = Flask(__name__)

    def admit() -> Response:
        try:
            review = parse_review(request.get_data())
        except ReviewError as error:
            return Response(jsoncodec.dumps({"error": str(error)}), 400, content_type=JSON)
        answer = {
            "apiVersion": review.api_version,
            "kind": "AdmissionReview",
            "response": {"uid": review.uid, "allowed": True},
        }
        return Response(jsoncodec.dumps(answer), 200, content_type=JSON)

    app.add_url_rule("/mutate", "mutate", admit, methods=["POST"])
    app.add_url_rule("/validate", "validate", admit, methods=["POST"])

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"ready":true}', 200, content_type=JSON)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"alive"}', 200, content_type=JSON)

    return app


def main() -> None:
    """Serve the floor app exactly as `podgate serve` would serve podgate (webhook/cli/serve.py)."""
    from webhook.cli.serve import prepare_metrics_dir
    from webhook.server import logs
    from webhook.server.settings import load_settings

    settings = load_settings({}, os.environ)
    logs.configure()
    prepare_metrics_dir(settings.metrics_dir)
    # Imported only now, as in `podgate serve`: prometheus_client picks its storage on first import.
    from webhook.server import serving

    policies, certificates = serving.open_sources(settings)
    server = serving.WebhookServer(settings, policies, certificates)
    # WebhookServer.load() hands gunicorn `server.application`: swapping it is the only difference.
    server.application = create_floor_app()
    server.run()


if __name__ == "__main__":
    main()
