"""Schemathesis fuzzes the running service from its own /openapi.json over loopback HTTP: no 5xx, ever.

Both kinds of input are generated: bodies that follow the schema (so they reach the model) and
bodies that break it (wrong types, missing fields, wrong content types). Two models are served,
a generative VAE and a conditional VAE, so label handling and sampling are reached too. Every
operation gets a fixed number of examples; the whole test stays well under a minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from components.runtime import AutoencoderRuntime
from flows.service.app import create_app
from flows.service.limits import ServiceLimits
from flows.service.server import running_server
from tests.exports import VAE_2D, export_tiny

# A batch of at most 2 keeps each generated body small enough for Hypothesis (a 16×16 image is 256
# numbers; larger batches overrun its example buffer and most examples are silently dropped).
LIMITS = ServiceLimits(max_body_bytes=64 * 1024, max_batch=2, max_pixels=64 * 64, max_generate=4)
EXAMPLES = 20  # per operation and generation mode: 3 to 10 s per model and mode on 2 shared cores
CVAE = ("model.kind=cvae", "model.architecture=fc", "model.hidden=[16]", "model.latent_dim=2",
        "model.num_classes=3")  # fmt: skip


@pytest.fixture(scope="module", params=["vae", "cvae"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    overrides = VAE_2D if request.param == "vae" else CVAE
    folder = export_tiny(tmp_path_factory.mktemp(request.param), request.param, *overrides).folder
    with running_server(create_app(AutoencoderRuntime(folder), LIMITS)) as url:
        yield url


def _operations(base: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_describes_every_request_body(base: str) -> None:
    """Without request bodies in the schema, a fuzzer only ever sends empty POSTs."""
    operations = {op.label: op for op in _operations(base)}
    for label in ("POST /v1/encode", "POST /v1/reconstruct", "POST /v1/decode", "POST /v1/generate"):
        assert operations[label].body, label
    media = {body.media_type for body in operations["POST /v1/reconstruct"].body}
    assert {"application/json", "image/png", "multipart/form-data"} <= media


@pytest.mark.slow
# Codes like 1e300 overflow float32 in the runtime's cast before it refuses them as infinite (a 422).
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzzing_from_the_openapi_schema_gives_no_server_error(
    base: str, mode: schemathesis.GenerationMode, tmp_path: Path
) -> None:
    statuses: Counter[int] = Counter()
    operations = _operations(base)
    assert len(operations) >= 7  # health, readiness, metadata and the four model endpoints

    for operation in operations:
        if mode == schemathesis.GenerationMode.NEGATIVE and not (operation.body or operation.query):
            continue  # nothing to break in a GET without parameters

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=base, checks=[not_a_server_error], timeout=30)
            statuses[response.status_code] += 1

        fuzz()

    assert sum(statuses.values()) >= 4 * 5, statuses
    assert all(status < 500 for status in statuses), statuses
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert statuses[200] > 0, statuses  # schema-valid requests do reach the model
