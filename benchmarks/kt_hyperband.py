"""keras-tuner's Hyperband on the search-efficiency benchmark's problem, under a wall deadline.

Run by ``benchmarks/search_efficiency.py`` as a process of its own (as a user would run
keras-tuner): the same digits splits, the same 20x100 dense net (the harness's own
builder), the same space (learning rate log 1e-4..1e-1, batch norm on/off, dropout
0..0.5, Nadam), epoch cap 27, factor 3. Hyperband keeps starting brackets until the
deadline; at the deadline no new trial starts and the running one stops at its epoch
end. Writes one CSV row per finished trial (its end time, score = best val_accuracy)
and a JSON with the test accuracy of the best model.

    python benchmarks/kt_hyperband.py --seed 0 --deadline <unix time> --out kt.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import search  # noqa: E402, F401  (sets the TensorFlow environment before keras loads)

# isort: split
import keras  # noqa: E402
import keras_tuner  # noqa: E402
import pandas as pd  # noqa: E402
from keras_tuner.engine.trial import TrialStatus  # noqa: E402

from search.data import Splits, load_splits  # noqa: E402
from search.models import build_model, make_optimizer  # noqa: E402

MAX_EPOCHS = 27
DEPTH, WIDTH, BATCH = 20, 100, 32


def digits() -> Splits:
    """The harness's ``dataset=digits`` splits (same fractions and split seed)."""
    return load_splits("digits", None, val_fraction=0.2, test_fraction=0.2, split_seed=0)


def make_hypermodel(splits: Splits) -> Any:
    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        model = build_model(
            "dense",
            splits.input_shape,
            splits.num_classes,
            depth=DEPTH,
            width=WIDTH,
            activation="elu",
            initializer="he_normal",
            batch_norm=hp.Boolean("batch_norm"),
            dropout_rate=hp.Float("dropout_rate", 0.0, 0.5),
        )
        lr = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        model.compile(
            optimizer=make_optimizer("nadam", lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    return build


class Deadline(keras.callbacks.Callback):
    """Stop the fit at the first epoch end past the deadline."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if time.time() >= self.deadline:
            self.model.stop_training = True


class DeadlineHyperband(keras_tuner.Hyperband):
    """Hyperband that starts no trial past ``deadline`` and logs each trial's end."""

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline
        self.ended: list[dict[str, Any]] = []
        populate = self.oracle.populate_space

        def limited(trial_id: str) -> dict[str, Any]:
            if time.time() >= deadline:
                return {"status": TrialStatus.STOPPED, "values": None}
            return populate(trial_id)  # type: ignore[no-any-return]

        self.oracle.populate_space = limited

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        done = self.oracle.get_trial(trial.trial_id)
        values = done.hyperparameters.values
        self.ended.append(
            {
                "end_unix": time.time(),
                "trial": done.trial_id,
                "score": done.score,
                "epochs": values.get("tuner/epochs"),
                "learning_rate": values.get("learning_rate"),
                "batch_norm": values.get("batch_norm"),
                "dropout_rate": values.get("dropout_rate"),
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="unix time")
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS)
    parser.add_argument(
        "--iterations", type=int, default=1000, help="Hyperband's iterations (1: one, complete)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    splits = digits()
    with tempfile.TemporaryDirectory(prefix="bench-kt-") as tmp:
        tuner = DeadlineHyperband(
            deadline=args.deadline,
            hypermodel=make_hypermodel(splits),
            objective="val_accuracy",
            max_epochs=args.max_epochs,
            factor=3,
            hyperband_iterations=args.iterations,  # 1000: the deadline ends the search
            seed=args.seed,
            directory=tmp,
            project_name="kt",
            overwrite=True,
        )
        tuner.search(
            splits.x_train,
            splits.y_train,
            validation_data=(splits.x_val, splits.y_val),
            batch_size=BATCH,
            callbacks=[Deadline(args.deadline)],
            verbose=0,
        )
        best = tuner.get_best_models(1)[0]
        _, test_accuracy = best.evaluate(splits.x_test, splits.y_test, verbose=0)
        best_trial = tuner.oracle.get_best_trials(1)[0]
    pd.DataFrame(tuner.ended).to_csv(args.out, index=False)
    winner = {
        "trial": best_trial.trial_id,
        "score": best_trial.score,
        "test_accuracy": test_accuracy,
    }
    args.out.with_suffix(".json").write_text(json.dumps(winner))


if __name__ == "__main__":
    main()
