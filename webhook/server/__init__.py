"""The webhook server: the Flask app, gunicorn over TLS, settings, hot reload, metrics and logs. An adapter:
it decodes the AdmissionReview, calls the engine and encodes its decision."""
