"""``module:function`` references in a config (``model.builder``, ``dataset.loader``) as
another process sees them: can ``search.train`` or a worker import it again?"""

from __future__ import annotations

__all__ = ["unimportable"]


def unimportable(reference: str) -> str:
    """Why another process cannot import ``reference`` (defined in a notebook or a script
    run as ``__main__``, or inside a function), or "" (a registered name, a module's)."""
    module, sep, name = reference.partition(":")
    if not sep:
        return ""
    if module == "__main__":
        return "it is defined in a notebook or in a script run as __main__"
    if "<locals>" in name or "<lambda>" in name:
        return "it is defined inside a function"
    return ""
