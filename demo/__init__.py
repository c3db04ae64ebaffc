"""`make demo`: the whole chain on this machine (see demo/run.py)."""
