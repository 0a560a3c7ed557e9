"""Builders by name: the harness's own and a user's, found the same way.

``model.builder`` is a name registered with ``@register_builder("name")`` or an import path
``module:function`` (a module importable from the current directory or the environment).
A builder takes ``input_shape``, ``num_classes`` and the other ``model.*`` keys as keyword
arguments and returns a ``keras.Model``, compiled or not. ``import_object`` is the same
``module:function`` lookup for anything else a config names (a data loader).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import keras

__all__ = [
    "BUILDERS",
    "BuilderError",
    "build_model",
    "import_object",
    "reference_of",
    "register_builder",
    "resolve_builder",
]

Builder = Callable[..., keras.Model]
F = TypeVar("F", bound=Callable[..., Any])
BUILDERS: dict[str, Builder] = {}


class BuilderError(ValueError):
    """A builder that cannot be found, called or used; the message names the config key."""


def register_builder(name: str) -> Callable[[F], F]:
    """Register a builder under ``name`` (``model.builder: name``). Registering the same
    function again (a notebook cell run twice) replaces it; another function, an error."""

    def add(fn: F) -> F:
        before = BUILDERS.get(name)
        if before is not None and reference_of(before) != reference_of(fn):
            raise BuilderError(
                f"model.builder {name!r} is already registered ({reference_of(before)}); "
                "register yours under another name"
            )
        BUILDERS[name] = fn
        return fn

    return add


def reference_of(fn: Callable[..., Any]) -> str:
    """``module:function``: how a config names ``fn``."""
    return f"{fn.__module__}:{fn.__qualname__}"


def import_object(reference: str, key: str) -> Any:
    """The object a ``module:function`` reference names, imported from the current
    directory or the environment; ``key`` (the config key) names it in errors."""
    module_name, _, name = reference.partition(":")
    if not module_name or not name:
        like = "my_data:load" if key.startswith("dataset") else "my_models:build"
        raise BuilderError(f"{key}: {reference!r} is not module:function (like {like})")
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)  # as `python -m` does: the user's files come first
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] and exc.name != module_name:
            raise BuilderError(f"{key}: importing {module_name} failed ({_said(exc)})") from None
        raise BuilderError(
            f"{key}: no module {module_name!r} in {here} or the environment; "
            f"run from the folder that holds {module_name.replace('.', '/')}.py"
        ) from None
    except Exception as exc:  # a syntax error, a failing import inside the user's module
        raise BuilderError(f"{key}: importing {module_name} failed ({_said(exc)})") from None
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part) and module_name == "__main__":
            raise BuilderError(
                f"{key}: {reference} was defined in a notebook or a script run as __main__, "
                f"which this command cannot import; move {name} into a module (my_models.py) "
                f"and set {key}: my_models:{name}"
            )
        if not hasattr(target, part):
            public = sorted(n for n, v in vars(module).items() if callable(v) and n[0] != "_")
            has = f" (it has {', '.join(public[:8])})" if public else ""
            raise BuilderError(f"{key}: module {module_name} has no {name!r}{has}")
        target = getattr(target, part)
    return target


def resolve_builder(builder: str | Builder) -> Builder:
    """The function ``builder`` names: a callable as is, a registered name, a reference."""
    if callable(builder):
        return builder
    name = str(builder)
    if name in BUILDERS:
        return BUILDERS[name]
    if ":" not in name:
        raise BuilderError(
            f"unknown model.builder {name!r}; use a registered name ({', '.join(BUILDERS)}) "
            "or module:function (your own builder, like my_models:build_cnn)"
        )
    fn = import_object(name, "model.builder")
    if not callable(fn):
        raise BuilderError(f"model.builder: {name} is of type {type(fn).__name__}, not a function")
    return fn  # type: ignore[no-any-return]


def build_model(
    builder: str | Builder, input_shape: tuple[int, ...], num_classes: int | None, **kwargs: Any
) -> keras.Model:
    """Build the model a ``model`` config describes (``builder`` + its arguments)."""
    fn = resolve_builder(builder)
    name = builder if isinstance(builder, str) else reference_of(fn)
    _check_arguments(fn, name, kwargs)
    try:
        model = fn(input_shape=input_shape, num_classes=num_classes, **kwargs)
    except BuilderError:
        raise
    except Exception as exc:
        raise BuilderError(f"model.builder {name} raised {_said(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise BuilderError(
            f"model.builder {name} returned {type(model).__name__}, not a keras.Model; "
            "return the model (keras.Sequential or keras.Model)"
        )
    return model


def _check_arguments(fn: Builder, name: str, kwargs: dict[str, Any]) -> None:
    """Each ``model.*`` key is an argument of the builder; each argument without a default
    has a key."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function: let the call say
        return
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    takes = [p for p in params if p not in ("input_shape", "num_classes")]
    for key in kwargs:
        if key not in params:
            raise BuilderError(
                f"model.{key} is not an argument of the builder {name} "
                f"(it takes {', '.join(takes) or 'no other arguments'}); remove the key or "
                "add the argument"
            )
    for param in params.values():
        required = param.default is param.empty and param.kind is not param.VAR_POSITIONAL
        if (
            required
            and param.name not in kwargs
            and param.name
            not in (
                "input_shape",
                "num_classes",
            )
        ):
            raise BuilderError(
                f"model.{param.name} needs a value: the builder {name} has no default for it"
            )
        if param.name in ("input_shape", "num_classes") and param.kind is param.POSITIONAL_ONLY:
            raise BuilderError(f"the builder {name} must take {param.name} as a keyword")
    for needed in ("input_shape", "num_classes"):
        if needed not in params:
            raise BuilderError(
                f"the builder {name} must take input_shape and num_classes (keyword "
                f"arguments, given by the harness); it has no {needed}"
            )


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:240]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
