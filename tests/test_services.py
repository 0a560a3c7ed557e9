"""The service fixtures are real: a PostgreSQL database and an ``mlflow server`` over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request

import psycopg
import pytest
from mlflow import MlflowClient
from sqlalchemy.engine import make_url

from tests.services import MlflowServer, healthy, libpq_conninfo


def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.database is not None and url.database.startswith("test_")
    with psycopg.connect(libpq_conninfo(postgres_url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == (url.database,)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_mlflow_server_tracks_runs_and_artifacts(mlflow_server: MlflowServer) -> None:
    assert mlflow_server.url.startswith("http://127.0.0.1:")
    assert make_url(mlflow_server.backend_store_uri).drivername == "postgresql+psycopg"
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("services")
    run = client.create_run(experiment_id, tags={"probe": "yes"})
    client.log_param(run.info.run_id, "alpha", "0.5")
    client.log_metric(run.info.run_id, "loss", 1.25, step=3)
    client.log_text(run.info.run_id, "hello through the proxy", "notes/hello.txt")
    client.set_terminated(run.info.run_id)

    back = client.get_run(run.info.run_id)
    assert back.data.params == {"alpha": "0.5"}
    assert back.data.metrics == {"loss": 1.25}
    assert back.data.tags["probe"] == "yes"
    assert back.info.status == "FINISHED"
    assert back.info.artifact_uri.startswith("mlflow-artifacts:")
    by_name = client.get_experiment_by_name("services")
    assert by_name is not None and by_name.experiment_id == experiment_id

    # Uploaded over HTTP, stored by the server under its artifacts destination.
    stored = list(mlflow_server.artifacts.rglob("hello.txt"))
    assert len(stored) == 1
    assert run.info.run_id in stored[0].parts
    assert stored[0].read_text() == "hello through the proxy"


def test_mlflow_server_stops_and_starts_on_the_same_port(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("survives a restart")
    url = mlflow_server.url

    mlflow_server.stop()
    assert not healthy(url)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/health", timeout=2)

    mlflow_server.start()
    assert mlflow_server.url == url
    assert healthy(url)
    assert client.get_experiment(experiment_id).name == "survives a restart"
