"""The chain a pack runs: its members' layers place by place. Members may lack an optional
layer (a dropout: rate 0; batch norm off) where others have it: the pack's chain has it
(``template_kinds``) and such a member has None at that place (``aligned``)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

__all__ = ["DROPOUTS", "OPTIONAL", "aligned", "is_chain", "layers_of", "template_kinds"]

DROPOUTS = ("Dropout", "AlphaDropout")
OPTIONAL = (*DROPOUTS, "BatchNormalization")  # a member may lack them: rate 0, batch norm off


def layers_of(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def template_kinds(models: Sequence[keras.Model]) -> list[str]:
    """The pack's chain, by layer type: the members' layers merged, each optional layer
    (dropout, batch norm) at its place once; a member that lacks one (a rate of 0, batch
    norm off) has None there (``aligned``). Members whose other layers differ are left as
    they are: the chain then fits one of them only."""
    chains = [[type(layer).__name__ for layer in layers_of(m)] for m in models]
    gaps = [_gaps(chain) for chain in chains]
    skeleton = [kind for kind in chains[0] if kind not in OPTIONAL]
    out: list[str] = []
    for i in range(len(gaps[0])):
        segments: list[list[str]] = [g[i] for g in gaps if len(g) == len(gaps[0])]
        longest: list[str] = max(segments, key=len)
        out.extend(longest)
        if i < len(skeleton):
            out.append(skeleton[i])
    return out


def _gaps(chain: Sequence[str]) -> list[list[str]]:
    """The optional layers before each required layer of ``chain``, and after the last."""
    gaps: list[list[str]] = [[]]
    for kind in chain:
        if kind in OPTIONAL:
            gaps[-1].append(kind)
        else:
            gaps.append([])
    return gaps


def aligned(kinds: Sequence[str], model: keras.Model) -> list[keras.layers.Layer | None] | None:
    """``model``'s layer at each place of the chain ``kinds`` (None: an optional layer it
    lacks: dropout, batch norm); None when its layers do not fit the chain."""
    own, out, j = layers_of(model), [], 0
    for kind in kinds:
        if j < len(own) and type(own[j]).__name__ == kind:
            out.append(own[j])
            j += 1
        elif kind in OPTIONAL:
            out.append(None)
        else:
            return None
    return out if j == len(own) else None


def is_chain(model: keras.Model) -> bool:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    return all(len(getattr(layer, "_inbound_nodes", [])) <= 1 for layer in model.layers)
