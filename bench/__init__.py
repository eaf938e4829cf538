"""The performance benchmark: ``python -m bench --help`` (``make bench``)."""
