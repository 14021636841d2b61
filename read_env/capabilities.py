"""Capability names: the paper's eight, in the order every vector of this package uses by default."""

from __future__ import annotations

from collections.abc import Sequence

PAPER_CAPABILITIES: tuple[str, ...] = (
    "general_knowledge",
    "reasoning",
    "math",
    "code",
    "tool_use",
    "long_context",
    "steerability",
    "multilingual",
)


def resolve_capabilities(capabilities: Sequence[str] | None, known: Sequence[str] = PAPER_CAPABILITIES) -> tuple[str, ...]:
    """Check a capability list against ``known`` names; ``None`` gives ``known``.

    Raises ``ValueError`` on an empty list, a duplicate or an unknown name, naming it.
    """
    if capabilities is None:
        return tuple(known)
    if isinstance(capabilities, str):
        raise TypeError(f"capabilities must be a list of names, not the string {capabilities!r}")
    names = tuple(capabilities)
    if not names:
        raise ValueError("capabilities must name at least one capability")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {list(known)}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"capabilities listed twice: {duplicates}")
    return names
