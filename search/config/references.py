"""``module:function`` references in a config (``model.builder``, ``dataset.loader``) as
another process sees them: can ``search.train`` or a worker import it again?"""

from __future__ import annotations

__all__ = ["OWN_BUILDERS", "unimportable"]

OWN_BUILDERS = ("dense", "transfer")  # the names search.models registers (a test checks)


def unimportable(reference: str) -> str:
    """Why another process cannot import ``reference`` (defined in a notebook or a script
    run as ``__main__``, or inside a function, or a name only the user's code registers),
    or "" (one of the harness's names, a module's function)."""
    module, sep, name = reference.partition(":")
    if not sep:
        if reference in OWN_BUILDERS:
            return ""
        return "it is a name your code registers (register_builder), which search.train lacks"
    if module == "__main__":
        return "it is defined in a notebook or in a script run as __main__"
    if "<locals>" in name or "<lambda>" in name:
        return "it is defined inside a function"
    return ""
