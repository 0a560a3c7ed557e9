"""Per-trial overhead of the harness (tracking + pruning + artifacts) against a bare fit.

The same trial (model, data, epochs, seed) runs as a bare ``model.fit`` + ``evaluate`` and
through the harness's trial loop in a real study (journal Optuna storage, SQLite MLflow
store, per-epoch metrics, pruning callback, artifacts). Runs alternate; the table shows the
median wall time of each and their ratio. Early stopping is off (patience = epochs) so
both train the same number of epochs.

    python benchmarks/overhead.py            # digits, 20 epochs, 5 repeats
    python benchmarks/overhead.py --quick    # 3 epochs, 2 repeats (CI smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import search  # noqa: E402, F401  (sets the TensorFlow environment before keras loads)

# isort: split
import keras  # noqa: E402
import optuna  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402

from search.config import resolved_copy  # noqa: E402
from search.data import Splits, splits_from_config  # noqa: E402
from search.objective import make_objective  # noqa: E402
from search.space import parse_space  # noqa: E402
from search.storage import open_storage  # noqa: E402
from search.tracking import StudyTracker  # noqa: E402
from search.training import build_compiled  # noqa: E402
from search.worker import StopRule, run_trials  # noqa: E402

PARAMS = {"optimizer.learning_rate": 1e-3, "model.batch_norm": False, "model.dropout_rate": 0.0}


def config(epochs: int, mlruns: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(REPO / "studies"), version_base="1.3"):
        cfg = compose(
            "run",
            overrides=[
                "study=deep_dnn",
                "dataset=digits",
                f"train.epochs={epochs}",
                f"train.patience={epochs}",
                f"mlruns_dir={mlruns}",
                *overrides,
            ],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return resolved_copy(cfg)


def bare_fit(cfg: DictConfig, splits: Splits) -> float:
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(cfg.seed))
    trial_cfg = OmegaConf.merge(
        cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in PARAMS.items()])
    )
    model = build_compiled(trial_cfg, splits)
    model.fit(
        splits.x_train,
        splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        epochs=int(cfg.train.epochs),
        batch_size=int(cfg.train.batch_size),
        verbose=0,
    )
    model.evaluate(splits.x_test, splits.y_test, batch_size=1024, verbose=0)
    return time.perf_counter() - started


def harness_trial(
    cfg: DictConfig, splits: Splits, study: optuna.Study, tracker: StudyTracker
) -> float:
    objective = make_objective(cfg, parse_space(cfg.space), splits, tracker)
    study.enqueue_trial(PARAMS)
    started = time.perf_counter()
    run_trials(study, objective, StopRule(n_trials=len(study.trials)))  # the harness's loop
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 epochs, 2 repeats")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "overhead.csv"
    )
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. model.depth=5")
    args = parser.parse_args()
    epochs, repeats = (3, 2) if args.quick else (args.epochs, args.repeats)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        cfg = config(epochs, Path(tmp), args.overrides)
        splits = splits_from_config(cfg.dataset)
        study = optuna.create_study(
            storage=open_storage(str(cfg.storage)), study_name="bench", direction="maximize"
        )
        tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), "bench")
        tracker.open()
        bare_fit(cfg, splits)  # warm-up: imports, first graph tracing of the process
        rows = []
        for repeat in range(repeats):
            rows.append({"repeat": repeat, "kind": "bare_fit", "seconds": bare_fit(cfg, splits)})
            rows.append(
                {
                    "repeat": repeat,
                    "kind": "harness",
                    "seconds": harness_trial(cfg, splits, study, tracker),
                }
            )
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    bare = statistics.median(frame.loc[frame.kind == "bare_fit", "seconds"])
    harness = statistics.median(frame.loc[frame.kind == "harness", "seconds"])
    print(
        f"per-trial overhead, {splits.name} ({splits.sizes()}), {epochs} epochs, {repeats} repeats"
    )
    print(f"| {'run':<10} | {'median s':>9} | {'per epoch s':>11} |")
    print(f"|{'-' * 12}|{'-' * 11}|{'-' * 13}|")
    print(f"| {'bare fit':<10} | {bare:>9.2f} | {bare / epochs:>11.3f} |")
    print(f"| {'harness':<10} | {harness:>9.2f} | {harness / epochs:>11.3f} |")
    print(f"overhead: {harness - bare:+.2f} s per trial ({(harness / bare - 1) * 100:+.1f} %)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
