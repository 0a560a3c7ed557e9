"""Where a study's time goes: the profile behind the speed targets issue 16 misses.

Part 1 runs the real command (``python -m search.run study=deep_dnn dataset=digits``, the
defaults: packs, TPE, median pruner) under ``cProfile`` and splits its wall time into the
parts a faster harness would have to shrink: start-up before the study (imports, Hydra),
set-up (MLflow, the preflight build, the store), building each trial's model
(``prepare_fit``), tracing (every ``tf.function`` traced: the pack's train and test steps,
each kind's solo test step; of which the pack's train step, and its optimizer update),
running the traced graphs (``TFE_Py_Execute``: the steps themselves, and the first run's
graph optimisation), ending each trial (test pass, learning-curve PNG, closing its MLflow
run, a kept model), the pack's per-epoch bookkeeping (per-member logs, early stopping's best
weights, refills) and closing the study (report, sync). The profiler slows Python (tracing,
bookkeeping) more than the graphs' native run: shares, not seconds, carry over.

Part 2 times one training step's two halves outside Keras, in ``tf.function`` loops of 32
steps, at K members (20 dense layers of 100 units, batch 32, ELU): the chain's matmuls
forward and backward as one batched matmul per layer (``[K, 32, 100] x [K, 100, 100]``, what
a pack runs) against K separate 2-D matmul chains (K models alone), and Keras' Nadam update
for every variable of a pack (``[K, in, out]``), as Keras runs it (some 25 ops per
variable) and XLA-compiled as a pack runs it (``CompiledUpdate``): the per-member arithmetic
is the same, so what K changes is how well the cores run it.

    python benchmarks/study_profile.py            # 10 trials, K = 1, 5, 10 (~4 min)
    python benchmarks/study_profile.py --quick    # 3 trials of 2 epochs, K = 1, 2 (CI)
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LAYERS, UNITS, BATCH, STEPS = 20, 100, 32, 32

# part: (file suffix, function name) whose cumulative seconds it is
PARTS = {
    "study": ("search/run.py", "run_study"),
    "worker": ("search/trial/worker.py", "work"),
    "closing (report, sync)": ("search/run.py", "_finish"),
    "building trials' models": ("search/trial/fit.py", "prepare_fit"),
    "tracing": ("polymorphic_function/tracing_compilation.py", "trace_function"),
    "  the pack's train step": ("search/packs/training.py", "train_step"),
    "    its optimizer update": ("keras/src/optimizers/base_optimizer.py", "apply_gradients"),
    "pack epochs' callbacks": ("search/packs/members.py", "on_epoch_end"),
    "  ending members": ("search/packs/members.py", "end"),
    "    closing their runs": ("search/trial/objective.py", "_end"),
}
EXECUTE = "TFE_Py_Execute"  # tottime: the traced graphs running (native)


def profile_study(trials: int, seed: int, extra: list[str]) -> tuple[float, dict[str, float]]:
    """The command's wall seconds (profiled) and its parts' cumulative seconds."""
    sys.path.insert(0, str(REPO))
    from benchmarks.trial_speed import run_study

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "study.prof"
        profiler = (sys.executable, "-m", "cProfile", "-o", str(out))
        wall = run_study("the study", trials, seed, Path(tmp) / "mlruns", extra, profiler)
        return wall, parts_of(pstats.Stats(str(out)))


def parts_of(stats: pstats.Stats) -> dict[str, float]:
    """Each part's cumulative seconds (functions called recursively counted once)."""
    table = stats.stats  # type: ignore[attr-defined]
    parts = dict.fromkeys(PARTS, 0.0)
    parts["running the graphs"] = 0.0
    for (path, _, name), (_, _, tottime, cumtime, _) in table.items():
        for part, (suffix, function) in PARTS.items():
            if name == function and path.endswith(suffix):
                parts[part] += cumtime
        if EXECUTE in name:
            parts["running the graphs"] += tottime
    parts["whole command"] = stats.total_tt  # type: ignore[attr-defined]
    return parts


def study_table(parts: dict[str, float]) -> pd.DataFrame:
    """Seconds and share of the whole command; an indented row is part of the one above
    (members joining a pack build their models in its callbacks, too)."""
    whole = parts["whole command"]
    rows = {
        "whole command": whole,
        "start-up (imports, Hydra)": whole - parts["study"],
        "set-up (MLflow, preflight, store)": parts["study"]
        - parts["worker"]
        - parts["closing (report, sync)"],
        **{k: parts[k] for k in list(PARTS)[2:]},
        "running the graphs": parts["running the graphs"],
    }
    frame = pd.DataFrame({"seconds": rows}).rename_axis("part")
    frame["share"] = frame["seconds"] / whole
    return frame.round(3)


def _looped(step: Callable[[], None]) -> Callable[[], float]:
    """``step`` run STEPS times in one graph; the returned callable times one step, ms."""
    import tensorflow as tf

    @tf.function
    def many() -> int:
        for _ in tf.range(STEPS):
            step()
        return 0

    many()  # traced and run once

    def timed() -> float:
        started = time.perf_counter()
        for _ in range(3):
            many()
        return (time.perf_counter() - started) / (3 * STEPS) * 1000

    return timed


def _chain(members: int, batched: bool) -> Callable[[], float]:
    """The 20x100 chain forward and backward (SGD), K members batched or K chains."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (members, UNITS, UNITS) if batched else (UNITS, UNITS)
    chains = 1 if batched else members
    kernels = [
        [tf.Variable(rng.normal(0, 0.1, shape).astype("float32")) for _ in range(LAYERS)]
        for _ in range(chains)
    ]
    x = tf.constant(rng.normal(size=((members,) if batched else ()) + (BATCH, UNITS)), "float32")

    def step() -> None:
        for own in kernels:
            with tf.GradientTape() as tape:
                h = x
                for kernel in own:
                    h = tf.nn.elu(tf.matmul(h, kernel))
                loss = tf.reduce_sum(h)
            for kernel, grad in zip(own, tape.gradient(loss, own), strict=True):
                kernel.assign_sub(1e-4 * grad)

    return _looped(step)


def _nadam(members: int, compiled: bool) -> Callable[[], float]:
    """Keras' Nadam update of a pack's variables (kernels and biases), gradients given;
    ``compiled``: as a pack runs it, in one XLA-compiled function (``CompiledUpdate``)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from search.packs.optimizers import CompiledUpdate

    shapes = [(members, UNITS, UNITS)] * LAYERS + [(members, 1, UNITS)] * LAYERS
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    grads = [tf.constant(rng.normal(size=s).astype("float32")) for s in shapes]
    kind = type("Compiled", (CompiledUpdate, keras.optimizers.Nadam), {})
    optimizer = (kind if compiled else keras.optimizers.Nadam)(1e-3)
    optimizer.build(variables)
    return _looped(lambda: optimizer.apply_gradients(zip(grads, variables, strict=True)))


def step_table(places: list[int]) -> pd.DataFrame:
    """Per step, ms: a pack's batched chain, K chains alone, and the Nadam update of a
    pack's variables, as Keras runs it and compiled (as a pack runs it)."""
    import search  # noqa: F401  (the harness's TensorFlow environment: oneDNN off)

    rows = []
    for k in places:
        batched, alone = _chain(k, True), _chain(k, False)
        nadam, compiled = _nadam(k, compiled=False), _nadam(k, compiled=True)
        rows.append(
            {
                "K": k,
                "batched chain ms": min(batched(), batched()),
                "K chains alone ms": min(alone(), alone()),
                "Nadam update ms": min(nadam(), nadam()),
                "compiled update ms": min(compiled(), compiled()),
            }
        )
    frame = pd.DataFrame(rows).set_index("K")
    frame["batched / alone"] = frame["batched chain ms"] / frame["K chains alone ms"]
    return frame.round(3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--places", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--quick", action="store_true", help="3 trials of 2 epochs, K = 1, 2")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default: benchmarks/results)")
    args = parser.parse_args()
    trials, places = (3, [1, 2]) if args.quick else (args.trials, args.places)
    extra = ["train.epochs=2"] if args.quick else []
    wall, parts = profile_study(trials, args.seed, extra)
    study = study_table(parts)
    print(f"deep_dnn on digits, {trials} trials, seed {args.seed}, under cProfile ({wall:.1f} s)")
    print(study.to_string())
    steps = step_table(places)
    print(f"\none step, batch {BATCH}, {LAYERS}x{UNITS} ELU, {STEPS} steps per call")
    print(steps.to_string())
    out = args.out or RESULTS / ("study_profile_quick.csv" if args.quick else "study_profile.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = [study.reset_index().assign(table="study"), steps.reset_index().assign(table="step")]
    pd.concat(frames).to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
