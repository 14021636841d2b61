"""Real-distillation backend of read-env: a small teacher -> student distillation loop under an
exact token budget (see :mod:`read_env.distill.distiller` for the API the environment drives)."""

from .assets import build_tiny_llama, ensure_default_student, ensure_default_teacher
from .ledger import TokenLedger, largest_remainder_split

__all__ = ["build_tiny_llama", "ensure_default_student", "ensure_default_teacher",
           "TokenLedger", "largest_remainder_split"]
