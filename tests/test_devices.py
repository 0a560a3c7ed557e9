"""GPUs planned (``search.config.devices``) and applied (``search.trial.devices``), tested
with faked device lists: this machine has no GPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import search.trial
from search.cli import HarnessError
from search.config import DevicePlan, plan_devices
from search.run import run_study
from search.trial import devices
from tests.conftest import compose, tiny

PLANS = [  # devices, workers, GPUs the machine has -> workers, GPUs used, worker i's GPU
    ("auto", "auto", 0, 1, (), [None]),
    ("auto", "auto", 2, 2, (0, 1), [0, 1]),
    ("auto", 1, 2, 1, (0,), [0]),  # one process trains on one GPU
    ("auto", 4, 2, 4, (0, 1), [0, 1, 0, 1]),  # two share each GPU
    ("auto", 3, 0, 3, (), [None, None, None]),  # the CPU, cores shared
    ("none", "auto", 2, 1, (), [None]),
    (None, "auto", 2, 1, (), [None]),
    ([], "auto", 2, 1, (), [None]),
    ([1], "auto", 2, 1, (1,), [1]),
    ([2, 0], "auto", 4, 2, (2, 0), [2, 0]),
    ([0, 1, 2], 2, 3, 2, (0, 1), [0, 1]),
]


@pytest.mark.parametrize(("devices", "workers", "visible", "count", "gpus", "each"), PLANS)
def test_the_plan_gives_each_worker_its_gpu(
    devices: object, workers: object, visible: int, count: int, gpus: tuple[int, ...], each: list
) -> None:
    plan = plan_devices(devices, workers, visible)
    assert (plan.workers, plan.gpus) == (count, gpus)
    assert [plan.gpu_of(i) for i in range(count)] == each


@pytest.mark.parametrize(
    ("devices", "visible", "said"),
    [
        ([2], 2, "devices: GPU 2 is not there: TensorFlow sees 2 GPUs (0, 1) on this machine"),
        ([0], 0, "devices: GPU 0 is not there: TensorFlow sees no GPU on this machine; use"),
        ([0, 3], 1, "devices: GPU 3 is not there: TensorFlow sees 1 GPU (0) on this machine"),
    ],
)
def test_a_gpu_the_machine_lacks_is_named(devices: list[int], visible: int, said: str) -> None:
    with pytest.raises(HarnessError) as err:
        plan_devices(devices, "auto", visible)
    assert said in str(err.value) and "\n" not in str(err.value)


def test_the_plan_says_what_trains_where() -> None:
    assert DevicePlan(1).said() == ""  # the CPU: nothing to say
    assert DevicePlan(2, (0, 1)).said() == "2 workers on GPUs 0, 1"
    assert DevicePlan(3, (1,)).said() == "3 workers on GPU 1 (sharing them, memory growth on)"


@dataclass
class FakeConfig:
    """``tf.config`` of a machine with ``count`` GPUs; records what the harness set."""

    count: int
    started: bool = False
    visible: list[Any] = field(default_factory=list)
    growth: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.experimental = self

    def list_physical_devices(self, kind: str) -> list[str]:
        return [f"/physical_device:GPU:{i}" for i in range(self.count)] if kind == "GPU" else []

    def set_visible_devices(self, chosen: list[str], kind: str) -> None:
        if self.started:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.visible = chosen

    def set_memory_growth(self, gpu: str, on: bool) -> None:
        self.growth.append((gpu, on))


@pytest.mark.parametrize(
    ("index", "visible", "growth"),
    [
        (1, ["/physical_device:GPU:1"], [("/physical_device:GPU:1", True)]),
        (None, [], []),  # the CPU: no GPU visible to this process
    ],
)
def test_a_process_keeps_its_gpu_alone_with_memory_growth(
    monkeypatch: pytest.MonkeyPatch, index: int | None, visible: list[str], growth: list[Any]
) -> None:
    fake = FakeConfig(count=2)
    monkeypatch.setattr(devices, "_config", lambda: fake)
    assert devices.visible_gpus() == 2
    devices.use_gpu(index)
    assert (fake.visible, fake.growth) == (visible, growth)


def test_too_late_to_choose_is_a_note(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeConfig(count=1, started=True)
    monkeypatch.setattr(devices, "_config", lambda: fake)
    with caplog.at_level(logging.WARNING, logger="search"):
        devices.use_gpu(0)
    assert "could not choose the GPU for this process" in caplog.text


def test_a_machine_with_two_gpus_runs_two_workers_by_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The plan on a faked two-GPU machine; the workers then find no GPU (this machine) and
    train on the CPU, so the whole path runs."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(search.trial, "visible_gpus", lambda: 2)
    cfg = compose("study=deep_dnn", *tiny(workdir / "mlruns", "n_trials=4"))
    assert cfg.workers == "auto" and cfg.devices == "auto"
    with caplog.at_level(logging.INFO, logger="search"):
        study = run_study(cfg)
    assert "2 workers on GPUs 0, 1" in caplog.text
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # two processes trained
    assert all(t.user_attrs["config"]["devices"] == "auto" for t in study.trials)  # as given


def test_this_process_keeps_every_gpu_and_places_its_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """workers=1 (a notebook's kernel too): no GPU hidden, so a later call can pick another."""
    import tensorflow as tf

    fake = FakeConfig(count=2)
    monkeypatch.setattr(devices, "_config", lambda: fake)
    placed: list[str] = []
    monkeypatch.setattr(tf, "device", lambda name: _Recorded(name, placed))
    with devices.on_gpu(1):
        assert placed == ["/GPU:1"]
    with devices.on_gpu(None):
        pass
    assert placed == ["/GPU:1"] and fake.visible == []  # nothing hidden
    assert [gpu for gpu, on in fake.growth if on] == [
        f"/physical_device:GPU:{i}" for i in (0, 1)
    ] * 2


@dataclass
class _Recorded:
    name: str
    placed: list[str]

    def __enter__(self) -> None:
        self.placed.append(self.name)

    def __exit__(self, *exc: object) -> None:
        return None
