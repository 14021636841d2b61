"""``ReAD-Mini-v0``: real distillation of a tiny transformer student on eight synthetic skill families."""
