"""The peer: a Flask-SSE app on Redis pub/sub, the common Flask way to serve events."""
