"""Schemathesis against the app's own `/api/openapi.json`, on SQLite and on PostgreSQL.

A real uvicorn server runs the whole API on a free loopback port in a thread of its own,
with its own event loop (the one the database engine is bound to); schemathesis sends
requests with `requests` from the test. Every operation gets a few positive and negative
examples (fixed seed), each sent as a signed-in owner with an access token minted for that
one case, so a fuzzed logout or password change never starves the cases after it. The
answers must never be 5xx and must match the document: status code, content type, body
schema, headers; data the document calls invalid must be refused.

The owner's tenant has its bundled local model disabled: the chat route is fuzzed for
everything up to the call, without spending minutes of CPU on generation.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import install_api
from tests.api.conftest import PASSWORD, identity_settings
from wiring.services import Services, build_services

EXAMPLES = 6  # per operation and mode: about 550 requests in all
SEED = 20261201
OWNER = "fuzz-owner@example.com"
TENANT = "fuzz_owner_tenant_q7x"  # long and odd: generated slugs never name it
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
#: A body over the size limit (413) is a refusal too.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}})
#: Failures that come from code this suite's owners do not maintain; each names the defect.
EXPECTED: dict[str, str] = {}


class LiveServer:
    """The API served by uvicorn on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.services: Services | None = None
        self._server: uvicorn.Server | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, name="schemathesis-api", daemon=True)
        self._failed: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by `start`; the thread must not die silently
            self._failed = exc

    async def _serve(self) -> None:
        services = build_services(self.settings)
        await services.start()
        self.services = services
        app = FastAPI()
        install_api(app, services)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await services.aclose()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not (self._server is not None and self._server.started):
            if self._failed is not None:
                raise RuntimeError("the API server did not start") from self._failed
            if time.monotonic() > deadline:
                raise TimeoutError("the API server did not start within 60 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)

    def call(self, make: Callable[[Services], Any]) -> Any:
        """Run `make(services)` (a coroutine) on the server's loop and wait for its result."""
        assert self.services is not None
        return asyncio.run_coroutine_threadsafe(make(self.services), self.loop).result(timeout=60)


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = identity_settings(tmp_path, db_url)
    # The fuzzer signs in with made-up addresses; they must not lock 127.0.0.1 out of the real ones.
    settings.auth.login_max_failures_per_ip = 1_000_000
    server = LiveServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Tally:
    """What the run did, and what it found."""

    operations: int = 0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def record(self, label: str, problem: str) -> None:
        found = self.failures.setdefault(label, [])
        if problem not in found and len(found) < 3:
            found.append(problem)


def owner_tokens(server: LiveServer) -> Callable[[], str]:
    """Sign the fuzz owner up once; then a fresh access token per call, minted in-process."""
    signed = requests.post(
        f"{server.url}/api/auth/signup",
        json={"email": OWNER, "password": PASSWORD, "tenant_slug": TENANT, "tenant_name": "Fuzz"},
        timeout=30,
    )
    assert signed.status_code == 201, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    user_id = uuid.UUID(requests.get(f"{server.url}/api/auth/me", headers=headers, timeout=30).json()["user"]["id"])
    for provider in requests.get(f"{server.url}/api/providers", headers=headers, timeout=30).json():
        disabled = requests.patch(
            f"{server.url}/api/providers/{provider['id']}", headers=headers, json={"enabled": False}, timeout=30
        )
        assert disabled.status_code == 200, disabled.text

    def fresh() -> str:
        pair = server.call(lambda services: services.identity.auth.start(user_id, TENANT))
        return str(pair.access_token)

    return fresh


def fuzz(server: LiveServer) -> Tally:
    """Run every operation's examples; collect failures instead of stopping at the first."""
    token = owner_tokens(server)
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", config=CONFIG)
    tally = Tally()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def run(case: schemathesis.Case) -> None:
                tally.requests += 1
                try:
                    response = case.call_and_validate(
                        session=session, headers={"Authorization": f"Bearer {token()}"}, checks=CHECKS, timeout=60
                    )
                    tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
                except FailureGroup as group:
                    for failure in group.exceptions:
                        tally.record(case.operation.label, f"{failure.title}: {failure.message[:300]}")
                except Failure as failure:
                    tally.record(case.operation.label, f"{failure.title}: {failure.message[:300]}")

            try:
                hypothesis.seed(SEED)(run)()
            except hypothesis.errors.Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label  # nothing to get wrong
    return tally


def test_the_api_answers_as_its_document_says(live_server: LiveServer) -> None:
    started = time.monotonic()
    tally = fuzz(live_server)
    elapsed = time.monotonic() - started
    print(
        f"schemathesis: {tally.operations} operations, {tally.requests} requests in {elapsed:.1f} s; "
        f"statuses {dict(sorted(tally.statuses.items()))}"
    )
    assert tally.operations >= 40
    assert tally.requests >= tally.operations * EXAMPLES
    unexpected = {label: found for label, found in tally.failures.items() if label not in EXPECTED}
    assert not unexpected, "\n".join(f"{label}:\n  " + "\n  ".join(found) for label, found in unexpected.items())
