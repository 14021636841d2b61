"""Shared settings of the agents tests."""

import read_env  # noqa: F401  (registers the environments)
