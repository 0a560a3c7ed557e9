"""Compile settings against the floor: how fast Keras trains the course's 20x100 net.

One trial's fit (the harness's own ``build_compiled``, the deep_dnn net: 20 dense layers x
100 units, ELU, He-normal, Nadam, batch 32) is timed under each setting of
``train.steps_per_execution``, ``train.jit_compile`` and oneDNN's custom ops
(``TF_ENABLE_ONEDNN_OPTS``, read when TensorFlow loads: each run is its own process).
A run also measures the machine's floor: the float32 rate of a 2048x2048 matmul, and the
epoch's arithmetic (6 FLOP per kernel weight per example: forward, and backward for the
inputs and the weights) divided by that rate. The table gives each setting's first epoch
(tracing and compiling included), its steady seconds per epoch (the median of the later
epochs) against the floor, and what a 10-epoch trial costs. ``pack K`` settings train K
trials (their own seeds and learning rates) as one fused pack (``search.packs``): their
figures are per trial, the pack's seconds over K. Runs alternate settings; medians over
``--repeats``.

    python benchmarks/fit_speed.py             # CIFAR-sized 20,000 and digits, 3 repeats
    python benchmarks/fit_speed.py --quick     # 2,000 CIFAR-sized examples, 1 repeat
    python benchmarks/fit_speed.py --digits-only --settings 'pack 8,oneDNN + pack 8'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# name: (steps_per_execution, jit_compile, oneDNN custom ops, trials fused in one pack)
SETTINGS = {
    "spe 1": (1, False, False, 1),
    "spe 32": (32, False, False, 1),
    "jit": (1, True, False, 1),
    "spe 32 + jit": (32, True, False, 1),
    "oneDNN": (1, False, True, 1),
    "oneDNN + spe 32": (32, False, True, 1),
    "oneDNN + spe 32 + jit": (32, True, True, 1),
    "pack 4": (32, False, False, 4),
    "pack 8": (32, False, False, 8),
    "oneDNN + pack 8": (32, False, True, 8),
    "pack 16": (32, False, False, 16),
    "pack 4 + jit": (32, True, False, 4),
    "pack 16 + jit": (32, True, False, 16),
    "pack 32 + jit": (32, True, False, 32),
}
QUICK = ("spe 1", "spe 32 + jit", "pack 4 + jit")
TRIAL_EPOCHS = 10  # what a trial costs: the first epoch and 9 steady ones


def one_run(setting: str, data: str, n_train: int, epochs: int) -> dict[str, float]:
    """In this process: the floor probe, then one fit under ``setting``."""
    sys.path.insert(0, str(REPO))
    import search  # noqa: F401  (the harness's TensorFlow environment, before keras)

    # isort: split
    import keras
    import numpy as np

    from benchmarks.overhead import cifar_sized, config
    from search.data import splits_from_config
    from search.packs import Member, fit_pack
    from search.trial import build_compiled

    spe, jit, _, pack = SETTINGS[setting]
    matmul = _matmul_gflops()
    overrides = [f"train.steps_per_execution={spe}", f"train.jit_compile={str(jit).lower()}"]
    cfg = config(
        "digits" if data == "digits" else "cifar10", epochs, Path("/nonexistent"), overrides
    )
    if data == "digits":
        splits = splits_from_config(cfg.dataset)
    else:
        splits = cifar_sized(n_train, n_train // 10, 100)
    models = []
    for k in range(pack):  # a pack's members: their own seeds and learning rates
        keras.utils.set_random_seed(k)
        cfg.optimizer.learning_rate = 1e-3 * (1 + k / 4)
        models.append(build_compiled(cfg, splits))
    seconds: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            seconds.append(time.perf_counter() - self.started)

    inputs = splits.fit_inputs(int(cfg.train.batch_size))
    if pack == 1:
        models[0].fit(**inputs, epochs=epochs, callbacks=[Clock()], verbose=0)
    else:  # the clock sees the pack's epochs through its first member
        members = [
            Member(m, [Clock()] if not k else [], patience=epochs) for k, m in enumerate(models)
        ]
        fit_pack(members, inputs, epochs=epochs)
    model = models[0]
    weights = sum(int(np.prod(v.shape)) for v in model.trainable_weights if len(v.shape) == 2)
    n = splits.n_train
    flop = 6.0 * weights * n  # forward 2, backward 4 per weight and example
    return {  # per trial: a pack's epoch over its members
        "matmul_gflops": matmul,
        "epoch_gflop": flop / 1e9,
        "floor_s": flop / (matmul * 1e9),
        "first_epoch_s": seconds[0] / pack,
        "steady_s": statistics.median(seconds[1:]) / pack,
        "train_examples": float(n),
    }


def _matmul_gflops() -> float:
    """The best of 5 timings of a 2048x2048 float32 matmul (a traced function)."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    mm = tf.function(lambda x: tf.linalg.matmul(x, x))
    mm(a).numpy()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        mm(a).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best / 1e9


def run_child(setting: str, data: str, n_train: int, epochs: int) -> dict[str, float]:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if SETTINGS[setting][2] else "0"}
    args = ["--one", setting, "--data", data, "--n-train", str(n_train), "--epochs", str(epochs)]
    done = subprocess.run(
        [sys.executable, __file__, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{setting} on {data} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def print_table(frame: pd.DataFrame) -> None:
    print("fit speed: the 20x100 ELU net, batch 32, by compile setting (medians; a pack's")
    print("figures are per trial: its epoch's seconds over its members)")
    print(
        "| data | setting | first epoch s | s per trial-epoch | floor s | x floor | "
        f"{TRIAL_EPOCHS}-epoch trial s | vs spe 1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for data, group in frame.groupby("data", sort=False):
        medians = group.groupby("setting", sort=False).median(numeric_only=True)
        trial = medians["first_epoch_s"] + (TRIAL_EPOCHS - 1) * medians["steady_s"]
        base = trial.get("spe 1", float("nan"))
        for setting, row in medians.iterrows():
            print(
                f"| {data} | {setting} | {row.first_epoch_s:.2f} | {row.steady_s:.3f} | "
                f"{row.floor_s:.3f} | {row.steady_s / row.floor_s:.1f}x | "
                f"{trial[setting]:.2f} | {trial[setting] / base:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=__doc__.splitlines()[-2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--settings", default=None, help="a comma-separated choice, e.g. 'spe 32,pack 16 + jit'"
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--cifar-only", action="store_true", help="skip the digits runs")
    only.add_argument("--digits-only", action="store_true", help="skip the CIFAR-sized runs")
    parser.add_argument("--one", choices=list(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--data", default="cifar-sized", help=argparse.SUPPRESS)
    parser.add_argument("--n-train", type=int, default=20_000, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.data, args.n_train, args.epochs)))
        return
    settings = list(QUICK if args.quick else SETTINGS)
    if args.settings:
        settings = [name.strip() for name in args.settings.split(",")]
        unknown = [name for name in settings if name not in SETTINGS]
        if unknown:
            parser.error(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    plans = [] if args.digits_only else [("cifar-sized", 2_000 if args.quick else 20_000, 3)]
    if args.digits_only or not (args.quick or args.cifar_only):
        plans.append(("digits", 0, 6))
    repeats = 1 if args.quick else args.repeats
    rows = []
    for data, n_train, epochs in plans:
        for repeat in range(repeats):  # settings alternate within each repeat
            for setting in settings:
                row = run_child(setting, data, n_train, epochs)
                rows.append({"data": data, "setting": setting, "repeat": repeat, **row})
                print(f"  {data} {setting} #{repeat}: {row['steady_s']:.3f} s/epoch", flush=True)
    frame = pd.DataFrame(rows)
    out = (
        args.out
        or REPO / "benchmarks" / "results" / f"fit_speed{'_quick' if args.quick else ''}.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print_table(frame)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
