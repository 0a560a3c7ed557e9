"""What keeping a trial's model costs (``tracking.log_models``): bytes in the artifact
store and seconds per kept model, for the course's 20x100 dense net and VGG16 on
CIFAR-shaped inputs, against the same trial's seconds without it.

Each model is built and compiled as a trial's (Nadam), fitted one step (so the optimizer
holds its slots, as a trained model's file does), then logged ``repeats`` times through the
harness's own path (``search.tracking.models.log_keras_model``: Keras flavour, signature,
input example, registered version) into a fresh SQLite store. Prints one table:

    python benchmarks/model_cost.py [--repeats 3] [--trials 20] [--quick] [--out cost.csv]

``--quick``: the dense net only, 1 repeat (the smoke test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import search  # noqa: E402, F401  (sets the TensorFlow environment before keras loads)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from search.models import build_model, make_optimizer  # noqa: E402
from search.tracking.models import KeptModel, log_keras_model  # noqa: E402

SHAPE, CLASSES = (32, 32, 3), 10
MODELS = {
    "dense 20x100": {"builder": "dense", "depth": 20, "width": 100},
    "vgg16, frozen, head 1024-512-256-128": {"builder": "transfer", "weights": None},
}


def _model(settings: dict[str, object]) -> keras.Model:
    kwargs = dict(settings)
    model = build_model(str(kwargs.pop("builder")), SHAPE, CLASSES, **kwargs)
    model.compile(make_optimizer("nadam", 1e-3), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((32, *SHAPE), dtype=np.float32)
    model.fit(x, np.zeros(32, dtype=int), epochs=1, verbose=0)
    return model


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(name: str, settings: dict[str, object], repeats: int) -> dict[str, float]:
    model = _model(settings)
    example = np.random.default_rng(1).random((2, *SHAPE), dtype=np.float32)
    seconds, sizes, files = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        experiment = client.create_experiment("cost", artifact_location=f"file://{tmp}/art")
        for i in range(repeats):
            run = client.create_run(experiment)
            before = _folder_bytes(Path(tmp) / "art") if (Path(tmp) / "art").exists() else 0
            kept = KeptModel(model, example, tags={"optuna.trial_number": str(i)})
            kept.register, kept.value = "cost", float(i)
            started = time.perf_counter()
            model_id = log_keras_model(client, experiment, run.info.run_id, kept)
            seconds.append(time.perf_counter() - started)
            sizes.append(_folder_bytes(Path(tmp) / "art") - before)
            keras_file = next((Path(tmp) / "art").rglob(f"{model_id}/artifacts/data/model.keras"))
            files.append(keras_file.stat().st_size)
    return {
        "params": float(model.count_params()),
        "keras_bytes": statistics.median(files),
        "stored_bytes": statistics.median(sizes),
        "seconds": statistics.median(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20, help="a study's size, for `all`")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("model_cost.csv"))
    args = parser.parse_args()
    models = dict(list(MODELS.items())[:1]) if args.quick else MODELS
    repeats = 1 if args.quick else args.repeats
    print(
        f"| model | params | .keras file | stored per kept model | seconds to keep | "
        f"log_models=all, {args.trials} trials |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for name, settings in models.items():
        row = measure(name, settings, repeats)
        rows.append({"model": name, **row})
        print(
            f"| {name} | {row['params']:,.0f} | {row['keras_bytes'] / 2**20:.1f} MiB | "
            f"{row['stored_bytes'] / 2**20:.1f} MiB | {row['seconds']:.2f} s | "
            f"{row['stored_bytes'] * args.trials / 2**20:.0f} MiB |"
        )
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
