"""Helpers of the log flood scenario: the command it runs (``child.py``) and the runner that
sends one event a line (``oneline.py``), the baseline."""
