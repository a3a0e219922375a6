"""Runners: one module each, all following the contract in :mod:`app.executor.runner`."""
