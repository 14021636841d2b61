"""Worlds fitted to logged real episodes (``read-env fit-world --model``) and ``ReAD-Fitted-v0``/``-v1`` on them."""
