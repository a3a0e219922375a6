"""gunicorn settings of the peer: the same server set-up as ours (``gunicorn.conf.py``)."""

import os

bind = os.environ["PEER_BIND"]
workers = 1
worker_class = "gevent"
worker_connections = int(os.environ.get("PEER_WORKER_CONNECTIONS", "1000"))
timeout = 30
graceful_timeout = 5
keepalive = 5
accesslog = os.environ.get("PEER_ACCESS_LOG", "-")  # one line per request, as ours logs
errorlog = "-"
control_socket_disable = True
