"""The prediction service: a Flask app served by gunicorn."""
