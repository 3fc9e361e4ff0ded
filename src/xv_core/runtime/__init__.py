"""The runtime: dispatch, scheduling and the Python API."""
