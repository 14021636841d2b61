"""Allocation policies: the ReAD bandit and its parts (ensemble, candidate set, profiling split, identifier),
PPO, the fixed-rule baselines and the data-mixing literature's online mixers. Each module is one agent family;
:mod:`agents.registry` names them."""
