"""An exported config over the harness's current defaults (``search.config.with_defaults``):
a ``best.yaml`` written before a key existed still re-trains, with that key's YAML default."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from search.config import check_config, with_defaults
from tests.conftest import compose, tiny


def _old_export(tmp_path: Path) -> dict[str, object]:
    """A run's resolved config, less keys that later versions of the harness added."""
    config = OmegaConf.to_container(compose("study=deep_dnn", *tiny(tmp_path / "mlruns")))
    assert isinstance(config, dict)
    for key in ("workers", "heartbeat_interval", "lr_find", "source"):
        config.pop(key)
    config["diagnostics"].pop("probe_examples")  # type: ignore[union-attr]
    config["dataset"].pop("train_limit")  # type: ignore[union-attr]
    config["optimizer"]["learning_rate"] = 0.0042  # type: ignore[index]
    return config


def test_missing_keys_get_their_yaml_defaults_and_the_export_wins(tmp_path: Path) -> None:
    exported = OmegaConf.create(_old_export(tmp_path))
    merged = with_defaults(exported, compose("from=x.yaml", config_name="train"))
    assert merged.workers == "auto" and merged.heartbeat_interval == 60  # studies/harness.yaml
    assert merged.lr_find.min_lr == 1e-6 and merged.diagnostics.probe_examples == 256
    assert merged.dataset.train_limit is None  # from studies/dataset/digits.yaml
    assert merged.source is None and "from" not in merged
    assert merged.optimizer.learning_rate == 0.0042 and merged.model.depth == 3  # the export's
    assert merged.dataset.name == "digits" and merged.dataset.test_fraction == 0.2
    check_config(merged)  # a complete config again


def test_the_harness_groups_are_not_mixed_into_the_export(tmp_path: Path) -> None:
    """The export's own sampler and data set stay whole: no keys of the default tpe or
    cifar10 groups leak into what the re-train logs as params."""
    config = _old_export(tmp_path)
    config["sampler"] = {"name": "random"}
    merged = with_defaults(OmegaConf.create(config), compose("from=x.yaml", config_name="train"))
    assert OmegaConf.to_container(merged.sampler) == {"name": "random"}
    assert set(merged.dataset) == set(compose("dataset=digits").dataset)
