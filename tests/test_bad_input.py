"""Bad input, in one place: every case is one line on stderr naming the key or file and what
would be valid, exit code 2, no traceback, and no Optuna study, MLflow experiment or run.

Hydra-level cases (unknown study, group option or key, an override that does not parse) and
a few representative others go through the real CLI (~5 s each: TensorFlow's import); the
rest call the same code in-process: ``command_line_problem`` for the command line,
``run_study`` for a composed config, ``load_exported`` for ``search.train from=...``.
"""

from __future__ import annotations

import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.cli import HarnessError, command_line_problem
from search.config import load_exported
from search.models import transfer
from search.run import run_study
from tests.cifar_fixture import DIR, make_cifar_tarball, write_tar
from tests.conftest import compose, journal_path, run_cli, tiny

DATASETS = "cifar10, diabetes, digits, images, keras, loader, npz"
STUDIES = "available: bn_vs_nobn, deep_dnn, deep_dnn_bn, deep_dnn_selu, transfer_resnet50"
SPACE_KEY = "+space.model.bogus={type:float,low:0,high:1}"
WHEN_KEY = "+space.optimizer.momentum={type:float,low:0.1,high:0.9,when:{optimizer.nam:sgd}}"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def assert_nothing_created(work: Path) -> None:
    """No Optuna journal, no MLflow experiment but Default, no artifact folder."""
    assert not journal_path(work).exists()
    assert_no_experiment(work)


def assert_no_experiment(work: Path) -> None:
    mlruns = work / "mlruns"
    if (mlruns / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
        assert {e.name for e in client.search_experiments()} <= {"Default"}
    assert not (mlruns / "artifacts").exists()


# -- the command line, through the real CLI ------------------------------------------------


def _yaml_that_does_not_parse(work: Path) -> str:
    (work / "best.yaml").write_text("model: [\n")
    return f"from={work / 'best.yaml'}"


@pytest.mark.parametrize(
    ("module", "args", "needles"),
    [
        ("search.run", ["study=nope"], ["error: unknown study 'nope'; " + STUDIES]),
        ("search.run", ["sampler=nope"], ["unknown sampler 'nope'; available: cmaes, grid"]),
        (
            "search.run",
            ["train.epoch=3"],
            ["unknown config key 'train.epoch' (from train.epoch=3); did you mean train.epochs?"],
        ),
        ("search.run", ["x=["], ["cannot parse override 'x=['"]),
        ("search.run", ["n_trials=0"], ["n_trials must be a positive whole number, got 0"]),
        ("search.export", ["ot=x"], ["unknown config key 'ot' (from ot=x); did you mean out?"]),
        ("search.train", [], ["from needs a value; add from=..."]),
        ("search.train", [_yaml_that_does_not_parse], ["best.yaml is not valid YAML (line 2"]),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(
    workdir: Path, module: str, args: list[str | Callable[[Path], str]], needles: list[str]
) -> None:
    argv = [arg(workdir) if callable(arg) else arg for arg in args]
    result = run_cli(module, *argv, f"mlruns_dir={workdir / 'mlruns'}", cwd=workdir)
    assert_one_line_error(result, *needles)
    assert_nothing_created(workdir)


def test_transfer_study_offline_imagenet_is_a_clean_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline (as here, and made so where the weights are cached): refused before anything."""
    real, preprocess = transfer.BACKBONES["vgg16"]

    def offline(**kwargs: object) -> object:
        if kwargs.get("weights") == "imagenet":
            raise Exception("URL fetch failure on https://example.invalid/vgg16.h5: no network")
        return real(**kwargs)

    monkeypatch.setitem(transfer.BACKBONES, "vgg16", (offline, preprocess))
    monkeypatch.chdir(workdir)
    cfg = compose(
        "study=transfer_vgg16",
        "dataset=digits",
        "n_trials=1",
        "dataset.train_limit=32",
        "space=null",
        f"mlruns_dir={workdir / 'mlruns'}",
    )
    with pytest.raises(HarnessError, match="use model.weights=null") as err:
        run_study(cfg)
    assert "\n" not in str(err.value) and "URL fetch failure" in str(err.value)
    assert_nothing_created(workdir)


# -- the command line, in-process (what entry() checks before Hydra runs the command) ------


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ("run", ["study=nope"], "unknown study 'nope'; " + STUDIES),
        ("run", ["study=deep_dnn", "study=nope"], "unknown study 'nope'; " + STUDIES),
        ("run", ["+study=nope"], "unknown study 'nope'; " + STUDIES),
        (
            "run",
            ["dataset=nope"],
            f"unknown dataset 'nope'; available: {DATASETS}",
        ),
        (
            "run",
            ["dataset=[digits,nope]"],
            f"unknown dataset 'nope'; available: {DATASETS}",
        ),
        (
            "run",
            ["pruner=nope"],
            "unknown pruner 'nope'; available: hyperband, median, none, successive_halving",
        ),
        (
            "run",
            ["foo=1"],
            "unknown config key 'foo' (from foo=1); "
            "see --cfg job for the keys, or +foo=... to add one",
        ),
        (
            "run",
            ["trian.epochs=1"],
            "unknown config key 'trian.epochs' (from trian.epochs=1); did you mean train.epochs?",
        ),
        (
            "run",
            ["optimizer.learnig_rate=0.1"],
            "did you mean optimizer.learning_rate?",
        ),
        ("run", ["study.x=1"], "unknown config key 'study.x' (from study.x=1); see --cfg job"),
        ("run", ["x=["], "cannot parse override 'x=[': no viable alternative at input '['"),
        ("run", ["n_trials"], "cannot parse override 'n_trials': missing EQUAL"),
        ("run", ["seed=${oops}"], "seed: Interpolation key 'oops' not found"),
        ("run", ["~nope"], "Could not delete from config. 'nope' does not exist."),
        ("run", ["study=deep_dnn,deep_dnn_bn"], "Ambiguous value for argument"),
        (
            "run",
            ["space.model.dropout_rate={type:categorical,choices:[0.1,0.2]}"],
            "to replace it write ~space.model.dropout_rate '+space.model.dropout_rate={type:",
        ),
        ("export", ["ot=x"], "unknown config key 'ot' (from ot=x); did you mean out?"),
        ("train", [], "from needs a value; add from=... to the command line"),
        ("train", ["from=x", "model.depth=3"], "+model.depth=... to add one"),
    ],
)
def test_command_line_problems_are_one_line(config: str, args: list[str], message: str) -> None:
    problem = command_line_problem(config, args)
    assert problem is not None and "\n" not in problem
    assert message in problem


def _user_configs(root: Path) -> Path:
    """A user's own config folder for ``--config-dir``: a good study, a broken one, an
    unsafe one (a Python tag)."""
    studies = root / "configs" / "study"
    studies.mkdir(parents=True)
    (studies / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - deep_dnn\n")
    (studies / "broken.yaml").write_text("model: [\n")
    (studies / "unsafe.yaml").write_text("model: !!python/object/apply:os.system [ls]\n")
    return root / "configs"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # every way in gets the same one-line errors: flags before or after the overrides
        (["study=nope", "--cfg", "job"], "unknown study 'nope'; available: bn_vs_nobn"),
        (["study=nope", "--config-dir", "{dir}"], "unknown study 'nope'; available: bn_vs_nobn"),
        (["study=mine", "trian.epochs=1", "--config-dir", "{dir}"], "did you mean train.epochs?"),
        (["study=mine", "n_trial=1", "-cd", "{dir}"], "did you mean n_trials?"),
        (["study=broken", "--config-dir", "{dir}"], "broken.yaml is not valid YAML (line 2"),
        (["study=unsafe", "--config-dir", "{dir}"], "unsafe.yaml is not valid YAML (line 1"),
        (["study=mine", "--config-dir", "{dir}/no"], "--config-dir: {dir}/no does not exist"),
        (["study=deep_dnn", "--config-path", "/nowhere"], "--config-path: /nowhere does not exist"),
        (["study=nope", "--config-path", "../studies"], "unknown study 'nope'"),
        (["study=mine", "--config-path", "{dir}"], "has no run.yaml (--config-path replaces"),
        (["study=deep_dnn", "--config-name", "nope"], "Cannot find primary config 'nope'"),
        (["study=deep_dnn", "--bogus"], "cannot read the command line: unrecognized arguments"),
        (["study=mine", "-cd", "{dir}", "n_trials=2"], "put every key=value before the flags"),
    ],
)
def test_hydra_flags_do_not_bypass_the_precheck(
    tmp_path: Path, args: list[str], message: str
) -> None:
    folder = _user_configs(tmp_path)
    problem = command_line_problem("run", [a.replace("{dir}", str(folder)) for a in args])
    assert problem is not None and "\n" not in problem, problem
    assert message.replace("{dir}", str(folder)) in problem


def test_a_study_from_a_config_dir_passes_the_precheck(tmp_path: Path) -> None:
    folder = _user_configs(tmp_path)
    assert command_line_problem("run", ["study=mine", "n_trials=2", "-cd", str(folder)]) is None


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ("run", ["study=deep_dnn", "n_trials=3", "+seed_note=x"]),
        ("run", ["--help"]),  # flags that compose nothing: Hydra's own handling
        ("run", ["study=deep_dnn", "--cfg", "job"]),
        (
            "run",
            [
                "~space.model.dropout_rate",
                "+space.model.dropout_rate={type:categorical,choices:[0]}",
            ],
        ),
        ("run", ["-m", "study=deep_dnn,deep_dnn_bn"]),
        ("run", ["hydra.run.dir=elsewhere", "study=nope"]),  # Hydra's settings: Hydra's own
        ("train", ["from=exports/deep_dnn/best.yaml", "+model.depth=3"]),
    ],
)
def test_good_or_hydra_command_lines_pass_the_precheck(config: str, args: list[str]) -> None:
    assert command_line_problem(config, args) is None


# -- a composed config, in-process: run_study refuses it before creating anything ----------


def _missing(work: Path) -> Path:
    return work / "nope.tar.gz"


def _directory(work: Path) -> Path:
    return work


def _text_file(work: Path) -> Path:
    path = work / "notes.txt"
    path.write_text("hello")
    return path


def _other_tarball(work: Path) -> Path:
    path = work / "other.tar.gz"
    write_tar(path, {"readme.txt": b"hello"})
    return path


def _truncated_cifar(work: Path) -> Path:
    full, path = work / "full.tar.gz", work / "cifar.tar.gz"
    make_cifar_tarball(full, per_batch=20, test=20)
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return path


def _cifar_names_other_content(work: Path) -> Path:
    path = work / "cifar.tar.gz"
    batch = pickle.dumps({b"nodata": 1})
    members = {f"{DIR}/data_batch_{i}": batch for i in range(1, 6)}
    write_tar(path, {**members, f"{DIR}/test_batch": batch})
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # the search space
        (["space.optimizer.learning_rate.low=1"], "space.optimizer.learning_rate: low (1) > high"),
        (["space.optimizer.learning_rate.low=0"], "space.optimizer.learning_rate: log scale needs"),
        (["space.model.batch_norm.choices=[]"], "space.model.batch_norm: categorical needs a non"),
        ([SPACE_KEY], "space.model.bogus: config key 'model.bogus' does not exist"),
        ([WHEN_KEY], "space.optimizer.momentum: config key 'optimizer.nam' does not exist"),
        (["space.model.dropout_rate.type=normal"], "space.model.dropout_rate: type must be float"),
        (["space.model.dropout_rate.high=nan"], "space.model.dropout_rate: low and high must be"),
        (["space.model.dropout_rate.high=inf"], "space.model.dropout_rate: low and high must be"),
        (["space.optimizer.learning_rate.low=-inf"], "space.optimizer.learning_rate: low and"),
        (["space.model.dropout_rate.step=nan"], "space.model.dropout_rate: step must be a"),
        (["space.model.batch_norm.choices=[false,1]"], "space.model.batch_norm: choices mix bool"),
        (["space.model.batch_norm.choices=[false,'no']"], "choices mix bool and string"),
        (["space.model.batch_norm.choices=[a,b]"], "model.batch_norm is true or false (now False)"),
        (["space.model.batch_norm.choices=[0.5,1]"], "search it as {type: categorical, choices"),
        (["+space.optimizer.name={type:float,low:0,high:1}"], "optimizer.name is a name (now"),
        (["optimizer.learning_rate=nan"], "optimizer.learning_rate must be a positive number"),
        (["optimizer.learning_rate=inf"], "optimizer.learning_rate must be a positive number"),
        (["timeout=inf"], "timeout must be a positive number of seconds or null, got inf"),
        (["accept_changes=maybe"], "accept_changes must be true or false, got 'maybe'"),
        # the optimizer: named under optimizer.name, not model:
        (["optimizer.name=nadamm"], "optimizer.name: unknown optimizer 'nadamm'; use one of sgd"),
        (
            ["+space.optimizer.name={type:categorical,choices:[sgd,adamm]}"],
            "space.optimizer.name: unknown optimizer 'adamm'",
        ),
        # counts
        (["n_trials=0"], "n_trials must be a positive whole number, got 0"),
        (["n_trials=-3"], "n_trials must be a positive whole number, got -3"),
        (["n_trials=many"], "n_trials must be a positive whole number, got 'many'"),
        (["workers=0"], "workers must be a positive whole number or auto (one per GPU), got 0"),
        (["workers=-1"], "workers must be a positive whole number or auto (one per GPU), got -1"),
        (["workers=many"], "workers must be a positive whole number or auto (one per GPU), got"),
        # devices (this machine has no GPU)
        (["devices=[7]"], "devices: GPU 7 is not there: TensorFlow sees no GPU on this machine"),
        (["devices=gpu"], "devices must be auto, none or a list of GPU indices like [0,1], got"),
        (["devices=[0,0]"], "devices must be auto, none or a list of GPU indices like [0,1]"),
        (["devices=[-1]"], "devices must be auto, none or a list of GPU indices like [0,1]"),
        (["train.epochs=0"], "train.epochs must be a positive whole number, got 0"),
        (["pack_queue=0"], "pack_queue must be a positive whole number, got 0"),
        (["train.pack_epoch=-1"], "train.pack_epoch must be a whole number >= 0, got -1"),
        (["train.pack_places=0"], "train.pack_places must be a positive whole number, got 0"),
        (
            ["train.pack_place=4", "train.pack_places=4"],
            "train.pack_place must be below train.pack_places (4), got 4",
        ),
        (["train.epochs=-2"], "train.epochs must be a positive whole number, got -2"),
        (["heartbeat_interval=0"], "heartbeat_interval must be a positive whole number"),
        (["train.patience=-1"], "train.patience must be a whole number >= 0, got -1"),
        (["dataset.split_seed=null"], "dataset.split_seed must be a whole number >= 0, got None"),
        (["diagnostics.probe_examples=0"], "diagnostics.probe_examples must be a positive whole"),
        (["evaluate.ece_bins=0"], "evaluate.ece_bins must be a positive whole number, got 0"),
        (["evaluate.mc_dropout_samples=-1"], "evaluate.mc_dropout_samples must be a whole number"),
        (["diagnostics.chance_loss_margin=-0.1"], "chance_loss_margin must be a number >= 0"),
        (["lr_find.smoothing=1.0"], "lr_find.smoothing must be a number >= 0 and <= 0.999"),
        (["lr_find.stop_factor=1"], "lr_find.stop_factor must be a number > 1, got 1"),
        (["lr_find.epochs=nan"], "lr_find.epochs must be a number > 0, got nan"),
        (["timeout=soon"], "timeout must be a positive number of seconds or null, got 'soon'"),
        (["optimizer.learning_rate=-1"], "optimizer.learning_rate must be a positive number"),
        (["+sampler.bogus=1"], "sampler=tpe: bad arguments"),
        # the study name: no way out of the artifact directory
        (["study_name=../x"], "study_name: '../x' is not allowed"),
        (["study_name=a/b"], "study_name: 'a/b' is not allowed"),
        (["study_name=.hidden"], "study_name: '.hidden' is not allowed"),
        # the dataset
        (["dataset=cifar10", _missing], "dataset.path: no file at"),
        (["dataset=cifar10", _directory], "is a directory, not a file"),
        (["dataset=cifar10", _text_file], "as a tar.gz archive (not a gzip, bzip2, xz or plain"),
        (["dataset=cifar10", _other_tarball], "is not a CIFAR-10 python tarball (missing"),
        (["dataset=cifar10", _truncated_cifar], "it may be truncated"),
        (["dataset=cifar10", _cifar_names_other_content], "is not a CIFAR-10 batch"),
        # a regression's targets trained as classes; a loss one letter off
        (["dataset=diabetes"], "214 different labels for 442 examples (under 5 per class)"),
        (["train.loss=binary_crossentropyy"], "did you mean binary_crossentropy?"),
        # the Optuna storage
        (["storage=sqlite:/x"], "storage: 'sqlite:/x' looks like a database URL but has no '//'"),
        (["storage=postgresq://x/y"], "storage: unknown database 'postgresq' in"),
        (["storage=://nowhere"], "storage: '://nowhere' is not a valid database URL"),
        (
            ["storage=postgresql+psycopg://search:secret@127.0.0.1:1/nodb"],
            "storage: cannot open postgresql+psycopg://",
        ),
        # the MLflow store (an unreachable one: below)
        (["tracking_uri=sqlit:///m.db"], "tracking_uri: unknown scheme 'sqlit' in 'sqlit:///m.db'"),
    ],
)
def test_run_study_refuses_bad_config_before_creating_anything(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str | Callable[[Path], Path]],
    message: str,
) -> None:
    monkeypatch.chdir(workdir)  # a relative path the harness might create lands here
    args = [f"dataset.path={o(workdir)}" if callable(o) else o for o in overrides]
    cfg = compose("study=deep_dnn", *tiny(workdir / "mlruns"), *args)  # a later dataset= wins
    with pytest.raises(HarnessError) as err:
        run_study(cfg)
    assert "\n" not in str(err.value)
    assert message in str(err.value)
    assert_nothing_created(workdir)
    assert not (workdir / "sqlite:").exists()


def test_an_unreachable_mlflow_server_is_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default: minutes
    cfg = compose("study=deep_dnn", *tiny(workdir / "mlruns", "tracking_uri=http://127.0.0.1:1"))
    with pytest.raises(HarnessError) as err:
        run_study(cfg)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("tracking_uri: cannot use the MLflow store")
    assert not journal_path(workdir).exists()  # the MLflow store is checked first
    assert_no_experiment(workdir)


# -- search.train from=<file> ----------------------------------------------------------------


def _write(name: str, payload: bytes) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        (work / name).write_bytes(payload)
        return work / name

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda work: work / "nope.yaml", "from: no file at"),
        (lambda work: work, "is a directory, not a file"),
        (_write("bad.yaml", b"model: [\n"), "bad.yaml is not valid YAML (line 2, column 1: "),
        (_write("tabs.yaml", b"a:\n\tb: 1\n"), "tabs.yaml is not valid YAML (line 2, column 1:"),
        (_write("bin.yaml", bytes(range(128, 256))), "bin.yaml is not readable YAML"),
        (_write("notes.yaml", b"hello: world\n"), "notes.yaml is not an exported config (missing"),
        (_write("list.yaml", b"- a\n- b\n"), "list.yaml is not an exported config (missing"),
        (
            _write(
                "flat.yaml",
                b"study_name: x\nseed: 1\nmetric: val_accuracy\ndataset: digits\n"
                b"model: {}\noptimizer: {}\ntrain: {}\ntracking_uri: sqlite:///m.db\n",
            ),
            "flat.yaml is not an exported config (dataset is not a mapping)",
        ),
    ],
)
def test_train_refuses_a_file_that_is_not_an_export(
    workdir: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(HarnessError) as err:
        load_exported(make(workdir))
    assert "\n" not in str(err.value)
    assert message in str(err.value)
