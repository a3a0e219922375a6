"""A gunicorn config for ours: the service's own ``gunicorn.conf.py`` plus a probe of full
garbage collections (``gunicorn -c bench/gcprobe.py wsgi:app``; ``bench.servers.Ours``).

A full collection (generation 2) scans every object the collector tracks and pauses every
stream of the worker while it runs. The probe, installed in the worker once the service's
own ``post_worker_init`` is done (after its ``gc.freeze()``), appends a line per full
collection to ``BENCH_GC_LOG``: when it ended (Unix seconds) and how long it took (seconds).
It costs a Python call at each collection of any generation, which returns at once for the
young ones. ``BENCH_GC_CONF`` names the config to load (this checkout's, or a ``--compare``
revision's).
"""

import gc
import os
import runpy
import time

_config = runpy.run_path(os.environ["BENCH_GC_CONF"])
globals().update({name: value for name, value in _config.items() if not name.startswith("__")})
_post_worker_init = _config.get("post_worker_init")


def post_worker_init(worker):
    if _post_worker_init is not None:
        _post_worker_init(worker)
    log = open(os.environ["BENCH_GC_LOG"], "a", buffering=1)
    started = [0.0]

    def probe(phase, info):
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            log.write(f"{time.time():.6f} {time.perf_counter() - started[0]:.6f}\n")

    gc.callbacks.append(probe)
