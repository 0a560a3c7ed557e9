"""``pack=K`` in the real command: K asked trials train as fused packs, each its own Optuna
trial and MLflow run as if alone; the quota, pruning, Ctrl-C and kill -9 keep their meaning."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import keras
import optuna
import pytest

import search
from search.data import splits_from_config
from search.trial import EpochRecorder, FitResult
from search.trial.packed import PackEntry, _said, fit_packed
from search.trial.worker import _pack, _pack_size
from tests.conftest import client_in, compose, run_cli, study_in, tiny
from tests.test_faults import (
    FAIL,
    FINISHED,
    RUNNING,
    SLOW_TRIALS,
    assert_one_run_per_trial,
    child_runs,
    mid_trial,
    start,
    wait_for,
)

COMPLETE = optuna.trial.TrialState.COMPLETE


def test_a_packed_study_has_its_quota_and_a_run_per_trial_as_alone(workdir: Path) -> None:
    result = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=5",
        "pack=3",
        "pack_queue=2",  # rolling: 5 trials on 3 places
        *tiny(workdir / "mlruns", "train.epochs=3", "seed=1"),  # batch norm on and off: one pack
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 5  # 3 + 2: the quota, not two packs of 3
    assert_one_run_per_trial(study, client_in(workdir))
    client = client_in(workdir)
    runs = child_runs(client)
    packed = []
    for trial in study.get_trials(states=FINISHED):
        (run,) = runs[trial.number]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)  # its own epochs
        assert [m.value for m in history] == pytest.approx(list(trial.intermediate_values.values()))
        if trial.state == COMPLETE:
            assert trial.value == pytest.approx(max(m.value for m in history))
            packed.append(int(run.data.metrics["packed_trials"]))
    assert max(packed) == 5, packed  # one ask of 5, batch norm or not: one pack of 3 places
    started = sorted(int(run.data.params["train.pack_epoch"]) for (run,) in runs.values())
    assert started[:3] == [0, 0, 0] and min(started[3:]) > 0, started  # 2 took freed places
    assert {run.data.params["model.batch_norm"] for run in runs[0] + runs[1] + runs[2]} == {
        "True",
        "False",
    }
    assert len({t.params["optimizer.learning_rate"] for t in study.trials}) == 5


def test_a_packed_trial_re_trains_from_its_export_to_its_value(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members with dropout, 3 trials on 2 places, one taking the place of one that
    stopped: each one's export trains at its place of a pack of 2 from ``train.pack_seed``,
    from ``train.pack_epoch``, and gives its epochs and its value again bit for bit."""
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    dropout = ("space.model.dropout_rate.low=0.2", "train.epochs=3")
    study = search.run_study(
        "deep_dnn", overrides=["n_trials=3", "pack=3", "pack_queue=2", *tiny(mlruns, *dropout)]
    )
    configs = {t.number: t.user_attrs["config"] for t in study.get_trials(states=(COMPLETE,))}
    assert {c["train"]["pack_seed"] for c in configs.values()} == {42}  # one pack: trial 0's seed
    assert {c["train"]["pack_places"] for c in configs.values()} == {2}
    late = max(n for n in configs if configs[n]["seed"] != 42)
    assert configs[late]["model"]["dropout_rate"] >= 0.2
    assert configs[late]["train"]["pack_epoch"] > 0  # it started when a place was freed
    runs = child_runs(client_in(workdir))
    for number, config in configs.items():
        trial, (run,) = study.trials[number], runs[number]
        assert run.data.params["train.pack_seed"] == "42"
        assert run.data.params["train.pack_place"] == str(config["train"]["pack_place"])
        exported = search.export_study("deep_dnn", [f"trial={number}", f"mlruns_dir={mlruns}"])
        result = search.train_exported(exported)
        assert result.value == trial.value, number
        assert list(result.history["val_accuracy"]) == list(trial.intermediate_values.values())
    alone = search.train_exported(exported, ["train.pack_seed=null"])  # its own batches
    assert list(alone.history["val_loss"]) != pytest.approx(list(result.history["val_loss"]))


def test_freed_places_take_newly_asked_trials_up_to_the_quota(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ask of 2 on 2 places (``pack_queue=1``) for a quota of 6: each place a trial
    frees takes one asked then, so the study is one pack; no trial is left WAITING, and a
    trial that joined that way re-trains from its export to its value, bit for bit."""
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    same = ("~space.model.batch_norm", "train.epochs=3")  # every trial fits the first pack
    overrides = ["n_trials=6", "pack=2", "pack_queue=1", *tiny(mlruns, *same)]
    study = search.run_study("deep_dnn", overrides=overrides)
    assert len(study.trials) == 6 and all(t.state in FINISHED for t in study.trials)
    configs = [t.user_attrs["config"]["train"] for t in study.trials]
    assert {c["pack_seed"] for c in configs} == {42} and {c["pack_places"] for c in configs} == {2}
    assert [c["pack_epoch"] == 0 for c in configs] == [True, True, *[False] * 4]
    assert_one_run_per_trial(study, client_in(workdir))
    late = max(t.number for t in study.trials if t.state == COMPLETE)
    assert late >= 2, "no trial that joined a freed place completed"
    exported = search.export_study("deep_dnn", [f"trial={late}", f"mlruns_dir={mlruns}"])
    assert search.train_exported(exported).value == study.trials[late].value


def test_a_trial_asked_into_a_pack_it_does_not_fit_trains_after_it(tmp_path: Path) -> None:
    """A freed place asks one more trial; one of another structure (batch norm where the
    pack's chain has none) does not join: it trains once the pack has ended, and no more
    are asked into that pack."""
    configs = [
        compose("study=deep_dnn", *tiny(tmp_path / "mlruns", f"seed={seed}", *extra))
        for seed, extra in [(1, ()), (2, ()), (3, ("model.batch_norm=true",))]
    ]
    for cfg in configs:
        cfg.pack, cfg.pack_queue = 2, 1
    entries = [(cfg, EpochRecorder(), []) for cfg in configs]
    splits = splits_from_config(configs[0].dataset)
    asked, order = [], []

    def more() -> tuple[int, PackEntry] | None:
        asked.append(len(asked))
        return (2, entries[2]) if len(asked) == 1 else None

    fit_packed(entries[:2], splits, lambda k, result: order.append(k), more)
    assert asked == [0] and order == [0, 1, 2]  # asked once, when trial 0 ended, trained last
    assert configs[2].train.pack_seed is None  # alone, not in the pack


def _slow_pack_of_two(workdir: Path, n_trials: int) -> list[str]:
    """Packs of 2 long trials of one structure (caught mid-pack by a signal)."""
    slow = tiny(workdir / "mlruns", *SLOW_TRIALS)
    return ["study=deep_dnn", f"n_trials={n_trials}", "pack=2", "pack_queue=2", *slow]


def test_ctrl_c_in_a_pack_closes_its_trials_and_the_command_continues(workdir: Path) -> None:
    args = _slow_pack_of_two(workdir, n_trials=4)
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir, finished=0), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [
        "interrupted; run the same command again to continue"
    ], stderr
    study = study_in(workdir)
    assert not study.get_trials(states=(RUNNING,))
    # one ask of 4 on 2 places: the members training or waiting fail; one that had stopped
    # was told then, and stays
    assert len(study.trials) == 4 and study.get_trials(states=(FAIL,))
    client = client_in(workdir)
    for trial in study.trials:
        (run,) = child_runs(client)[trial.number]
        if trial.state == FAIL:
            assert trial.user_attrs["outcome"] == "interrupted"
            assert run.info.status == "KILLED"
        else:
            assert trial.state in FINISHED and run.info.status == "FINISHED"
    again = run_cli("search.run", *args, "train.epochs=2", "accept_changes=true", cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 4
    assert_one_run_per_trial(study, client)


@pytest.mark.slow
def test_kill_9_in_a_pack_then_the_same_command_tops_up(workdir: Path) -> None:
    args = _slow_pack_of_two(workdir, n_trials=3)
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir, finished=0), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(study_in(workdir).get_trials(states=(RUNNING,))) == 3  # the ask's, 2 training
    again = run_cli("search.run", *args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = study_in(workdir)
    orphaned = [t for t in study.trials if t.user_attrs.get("orphaned")]
    assert len(orphaned) == 3 and all(t.state == FAIL for t in orphaned)
    assert len(study.get_trials(states=FINISHED)) == 3
    assert_one_run_per_trial(study, client_in(workdir))


def conv_net(input_shape: tuple[int, ...], num_classes: int, **_: object) -> keras.Model:
    """A builder of the user's own with a layer packs have no fused form of."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_a_model_without_a_fused_form_trains_alone_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = ["model.builder=tests.test_pack_runs:conv_net", "pack=2"]
    entries = []
    for seed in (1, 2, 3):
        cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", f"seed={seed}", *overrides))
        entries.append((cfg, EpochRecorder(), []))
    splits = splits_from_config(entries[0][0].dataset)
    _said.clear()  # said once per process: this test's process may have said it before
    with caplog.at_level(logging.WARNING, logger="search"):
        ended: dict[int, FitResult | BaseException] = {}
        fit_packed(entries, splits, ended.__setitem__)
        fit_packed(entries[:2], splits, lambda k, result: None)
    results = [ended[k] for k in range(3)]
    assert all(isinstance(r, FitResult) for r in results)
    assert [r.metrics["packed_trials"] for r in results if isinstance(r, FitResult)] == [1.0] * 3
    notes = [r.getMessage() for r in caplog.records if "not packed" in r.getMessage()]
    assert len(notes) == 1 and "Conv2D" in notes[0], notes
    auto = compose("study=deep_dnn", *tiny(tmp_path / "mlruns"))  # pack=auto
    assert callable(pack := _pack(auto, "")) and pack() == 1  # asks one at a time from now
    _said.clear()
    assert pack() == 16  # up to 2 trials asked per place of a pack of 8
    assert _pack(compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "pack=3")), "") == 6
    fixed = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "pack=3", "pack_queue=1"))
    assert _pack(fixed, "") == 3


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (("optimizer.learning_rate=auto",), "its own learning rate"),
        (("metric=[val_accuracy,seconds_per_epoch]", "direction=[maximize,minimize]"), "pack's"),
    ],
)
def test_pack_is_ignored_where_a_trial_must_train_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, overrides: tuple[str, ...], why: str
) -> None:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "pack=4", *overrides))
    with caplog.at_level(logging.WARNING, logger="search"):
        assert _pack_size(cfg, "") == 1
    assert [r.getMessage() for r in caplog.records if "pack=4 is ignored" in r.getMessage()]
    assert why in caplog.text
    assert _pack_size(compose("study=deep_dnn", *tiny(tmp_path / "m", "pack=4")), "") == 4
