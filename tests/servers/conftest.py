from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.processes import mlflow_server


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri
