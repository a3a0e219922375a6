"""Log set-up for the server process: one line per record on stderr."""

import logging
import os


def configure_logging() -> None:
    """Send the app's records to stderr, beside gunicorn's own log."""
    level = os.environ.get("OPS_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
    logger = logging.getLogger("app")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
