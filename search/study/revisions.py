"""What a study measures, and when a continued study measures something else.

A study's first run records its *revision 0*: the resolved config less the keys that only
say how long, where or how fast to search (``NOT_COMPARED``), flattened to dotted keys, in
the study's user attrs. A later run of the same study with another search space, training
budget, model or data is refused with the list of what changed, unless the user adds
``accept_changes=true``: then it becomes the next revision (or an earlier one it matches),
and every trial records the revision it ran under (user attr and MLflow tag ``revision``),
so that the report and plots compare like with like. What the study optimizes
(``metric``, ``direction``) cannot change: that is a new study.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import optuna
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from search.cli.errors import HarnessError
from search.study.names import Attr
from search.study.storage import ENDED

__all__ = [
    "CONTENTS",
    "NOT_COMPARED",
    "changes",
    "latest_revision",
    "measured",
    "recorded_metric",
    "recorded_metrics",
    "revision_of",
    "settle_revision",
]

# how long, where and how fast a study searches: changing them changes no trial's meaning
NOT_COMPARED = (
    "study_name",
    "n_trials",
    "timeout",
    "workers",
    "devices",
    "max_failures",
    "seed",
    "sampler",
    "mlruns_dir",
    "storage",
    "heartbeat_interval",
    "tracking_uri",
    "artifact_root",
    "tracking",
    "accept_changes",
    "warm_start",
    "warm_start_k",
    "source",
    "train.verbose",
    "train.steps_per_execution",
    "train.jit_compile",
    "train.traced_models",
    "train.pack_seed",
    "train.pack_epoch",
    "train.pack_place",
    "train.pack_places",
    "pack",
    "pack_queue",
    "search_path",
)
_COPIES = ("cifar10", "keras")  # sets whose dataset.path is a local copy, not the data
# keys added to the harness since a study may have recorded its revision: at these values
# (the behaviour before them) they change nothing
_ADDED = {"train.loss": "sparse_categorical_crossentropy"}
CONTENTS = "dataset.contents"  # recorded since data digests: older revisions lack it
_FIXED = ("metric", "direction")  # what the study optimizes: another study if changed
_FOUND = ("optimizer.learning_rate",)  # learning_rate: auto stores the rate each trial found
_SHOWN = 4  # changes named in the message


def measured(cfg: DictConfig, contents: str | None = None) -> dict[str, Any]:
    """The config's keys that decide what a trial measures, dotted, JSON-safe; with the
    data's digest (``Splits.contents``) as ``dataset.contents``: the same file rewritten,
    or images added to a folder, is another data set."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    data = plain.get("dataset")
    if isinstance(data, dict) and (data.get("kind") or data.get("name")) in _COPIES:
        data.pop("path", None)  # where the file is, not what it holds
    if isinstance(data, dict) and contents:
        data[CONTENTS.split(".")[1]] = contents
    flat = pd.json_normalize(json.loads(json.dumps(plain, default=str)), sep=".")
    row = flat.iloc[0].to_dict() if not flat.empty else {}
    return _comparable(
        {
            key: _plain(value)
            for key, value in sorted(row.items())
            if not any(key == k or key.startswith(f"{k}.") for k in NOT_COMPARED)
            and not (key.startswith("space.") and value is None)  # `param: null`: not searched
        }
    )


def _comparable(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` less the base values of keys searched in every trial (the sampler's value
    replaces them: ``optimizer.learning_rate=0.01`` changes nothing); a key searched only
    under a ``when`` keeps its value (the other trials use it). One objective given as a
    list of one is that objective; a study of several has no pruner (Optuna cannot prune
    one), so its ``pruner`` keys say nothing."""
    flat = {k: v[0] if k in _FIXED and _listed(v) and len(v) == 1 else v for k, v in flat.items()}
    if _listed(flat.get("metric")) and len(flat["metric"]) > 1:
        flat = {k: v for k, v in flat.items() if not k.startswith("pruner.")}
    searched = {
        key.removeprefix("space.").removesuffix(".type")
        for key in flat
        if key.startswith("space.") and key.endswith(".type")
    }
    conditional = {p for p in searched if any(k.startswith(f"space.{p}.when.") for k in flat)}
    return {k: v for k, v in flat.items() if k not in searched - conditional}


def changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each key that differs, the training budget, model and data
    before the search space; a parameter added or dropped whole is one item."""
    added, dropped = _whole(before, now), _whole(now, before)
    out = [f"{p}: added {_brief(now, p)}" for p in sorted(added)]
    out += [f"{p}: dropped (was {_brief(before, p)})" for p in sorted(dropped)]
    for key in sorted(set(before) | set(now)):
        if any(key.startswith(f"{p}.") for p in added | dropped) or _unchanged(key, before, now):
            continue
        old, new = before.get(key, "(none)"), now.get(key, "(none)")
        if old != new:
            said = " (the data changed)" if key == CONTENTS else ""
            out.append(f"{key}: {_shown(old)} -> {_shown(new)}{said}")
    return sorted(out, key=lambda line: line.startswith("space."))


def _listed(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _shown(value: Any) -> str:
    """A value as the command line writes it: ``[val_accuracy,params]``."""
    return f"[{','.join(str(v) for v in value)}]" if _listed(value) else str(value)


def _unchanged(key: str, before: dict[str, Any], now: dict[str, Any]) -> bool:
    """A key one side lacks that means no change: null on the other side, a key added to
    the harness at its old behaviour (``train.loss``; ``dataset.kind`` = the set's name)."""
    if key in before and key in now:
        return False
    value = now[key] if key in now else before[key]
    if value is None or key == CONTENTS:  # a digest one side lacks: unknown, not changed
        return True
    if key in before:
        return False
    return _ADDED.get(key, object()) == value or (
        key == "dataset.kind" and value == now.get("dataset.name")
    )


def _whole(before: dict[str, Any], now: dict[str, Any]) -> set[str]:
    """The shortest dotted prefixes of ``now``'s new keys that ``before`` has nothing under."""
    out = set()
    for key in set(now) - set(before):
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix not in before and not any(k.startswith(f"{prefix}.") for k in before):
                out.add(prefix)
                break
    return out


def _brief(flat: dict[str, Any], prefix: str) -> str:
    inner = {k.removeprefix(f"{prefix}."): v for k, v in flat.items() if k.startswith(f"{prefix}.")}
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(inner.items())) + "}"


def recorded_metric(study: optuna.Study, fallback: object) -> str:
    """The ``metric`` the study was created with (of several, the first; ``fallback`` for
    a study from before revisions were recorded): what export, sync and report name its
    values."""
    return recorded_metrics(study, fallback)[0]


def recorded_metrics(study: optuna.Study, fallback: object) -> list[str]:
    """Each objective's metric, as the study was created with them."""
    recorded = study.user_attrs.get(Attr.REVISIONS) or [{}]
    metric = recorded[-1].get("metric", fallback)
    if isinstance(metric, list | tuple | ListConfig):
        return [str(m) for m in metric]
    return [str(metric)]


def settle_revision(
    study: optuna.Study, cfg: DictConfig, accept: bool, contents: str | None = None
) -> int:
    """The revision this run's trials belong to; refuses a changed study unless ``accept``.
    ``contents``: the data's digest."""
    now = measured(cfg, contents)
    recorded: list[dict[str, Any]] = list(study.user_attrs.get(Attr.REVISIONS, []))
    revisions = [_comparable(r) for r in recorded] or _from_first_trial(study, now)
    if not revisions:  # a new study
        study.set_user_attr(Attr.REVISIONS, [now])
        return 0
    if now in revisions:
        if not recorded:
            study.set_user_attr(Attr.REVISIONS, revisions)
        return revisions.index(now)
    diff = changes(revisions[-1], now)
    if not diff:  # only keys the harness added since, at their old behaviour: now recorded
        study.set_user_attr(Attr.REVISIONS, [*revisions[:-1], now])
        return len(revisions) - 1
    fixed = [line for line in diff if line.split(":", 1)[0] in _FIXED]
    if fixed:
        said = "; ".join(fixed)
        made = " ".join(f"{k}={_shown(revisions[-1].get(k))}" for k in _FIXED)
        raise HarnessError(
            f"study {study.study_name} was made to optimize another objective ({said}); "
            f"continue it with {made}, or start a new study: study_name={study.study_name}_v2"
        )
    if not accept:
        shown = "; ".join(diff[:_SHOWN])
        if diff[_SHOWN:]:
            shown += f"; and {len(diff) - _SHOWN} more"
        raise HarnessError(
            f"study {study.study_name} has {len(study.trials)} trials under another config "
            f"({shown}); add accept_changes=true to continue it as revision "
            f"{len(revisions)}, or start a new study: study_name={study.study_name}_v2"
        )
    study.set_user_attr(Attr.REVISIONS, [*revisions, now])
    return len(revisions)


def _from_first_trial(study: optuna.Study, now: dict[str, Any]) -> list[dict[str, Any]]:
    """Revision 0 of a study made before revisions were recorded: its first trial's stored
    config, with the keys that trial sampled (and a rate it found) taken from ``now``."""
    first = next((t for t in study.trials if isinstance(t.user_attrs.get(Attr.CONFIG), dict)), None)
    if first is None:
        return []
    searched = {*first.params, *_FOUND}
    stored = measured(OmegaConf.create(first.user_attrs[Attr.CONFIG]))
    kept = {k: v for k, v in stored.items() if k not in searched}
    return [{**{k: v for k, v in now.items() if k in searched}, **kept}]


def latest_revision(study: optuna.Study) -> tuple[optuna.Study, int | None]:
    """The study as it is (and None) when its trials are of one revision; else an
    in-memory copy holding the trials of the newest trial's revision (renumbered from 0),
    named ``<study> r<k>``, and k."""
    ended = study.get_trials(deepcopy=False, states=ENDED)
    if len({revision_of(t) for t in ended}) < 2:
        return study, None
    newest = revision_of(max(ended, key=lambda t: t.number))
    view = optuna.create_study(
        study_name=f"{study.study_name} r{newest}", directions=study.directions
    )
    view.add_trials([t for t in ended if revision_of(t) == newest])
    if study.metric_names:
        with warnings.catch_warnings():  # set_metric_names is "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            view.set_metric_names(study.metric_names)
    return view, newest


def revision_of(trial: optuna.trial.FrozenTrial) -> int:
    """The revision a trial ran under (one from before revisions were recorded: 0)."""
    return int(trial.user_attrs.get(Attr.REVISION, 0))


def _plain(value: Any) -> Any:
    """numpy scalars from pandas back to Python (they go to the storage as JSON)."""
    return value.item() if hasattr(value, "item") else value
