"""Rate limiting and seeded fault injection on the Azure API routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import spec_schemas

V = "2024-08-01"


def _list(emu: Any) -> httpx.Response:
    return emu.client.get("/avatar/batchsyntheses", params={"api-version": V})


def test_rate_limit_per_minute(make_emu: Any) -> None:
    emu = make_emu(rate_limit_per_minute=2)
    assert _list(emu).status_code == 200
    assert _list(emu).status_code == 200
    limited = _list(emu)
    assert limited.status_code == 429
    spec_schemas.validate_response(
        spec_schemas.BATCH_AVATAR, "/batchsyntheses", "get", 429, limited.json()
    )
    assert limited.json()["error"]["code"] == "TooManyRequests"
    # A sliding minute: the third request waits for the first to leave it (a bucket says 30).
    assert 30 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["x-ms-error-code"] == "TooManyRequests"
    # The admin surface and result downloads are never limited.
    assert emu.admin("GET", "/stats").status_code == 200
    stats = emu.stats()
    assert stats["rate_limited"] == 1 and stats["faults_injected"] == {}
    assert stats["requests_by_route"]["GET /avatar/batchsyntheses"] == {"200": 2, "429": 1}
    # Every Azure API request is kept with its arrival time (the admin call above is not).
    rows = stats["request_times"]
    assert [(route, status) for _at, route, status in rows] == [
        ("GET /avatar/batchsyntheses", "200"),
        ("GET /avatar/batchsyntheses", "200"),
        ("GET /avatar/batchsyntheses", "429"),
    ]
    assert rows[0][0] <= rows[1][0] <= rows[2][0]


def test_rate_limit_per_operation_kind(make_emu: Any) -> None:
    emu = make_emu(rate_limits={"create": 1})
    assert emu.put_job("rl-1", emu.job_body()).status_code == 201
    assert emu.put_job("rl-2", emu.job_body()).status_code == 429
    for _ in range(5):
        assert emu.get_job("rl-1").status_code == 200
        assert _list(emu).status_code == 200


@pytest.mark.parametrize(
    ("knob", "status", "code"),
    [
        ("p_429", 429, "TooManyRequests"),
        ("p_500", 500, "InternalServerError"),
        ("p_503", 503, "ServiceUnavailable"),
    ],
)
def test_injected_error_statuses(make_emu: Any, knob: str, status: int, code: str) -> None:
    emu = make_emu(faults={knob: 1.0})
    resp = _list(emu)
    assert resp.status_code == status
    assert resp.json() == {"error": {"code": code, "message": resp.json()["error"]["message"]}}
    spec_schemas.validate_response(
        spec_schemas.BATCH_AVATAR, "/batchsyntheses", "get", status, resp.json()
    )
    assert resp.headers["x-ms-error-code"] == code and resp.headers["apim-request-id"]
    stats = emu.stats()  # admin routes are not faulted
    assert stats["faults_injected"] == {knob[2:]: 1}
    assert stats["rate_limited"] == 0


def test_dropped_connection(make_emu: Any) -> None:
    emu = make_emu(faults={"p_reset": 1.0})
    with pytest.raises(httpx.TransportError):
        _list(emu)
    assert emu.stats()["requests_by_route"]["GET /avatar/batchsyntheses"] == {"dropped": 1}
    emu.api.set_faults(p_reset=0.0)
    assert _list(emu).status_code == 200


def test_slow_response(make_emu: Any) -> None:
    emu = make_emu(faults={"p_slow": 1.0, "slow_s": 0.3})
    with pytest.raises(httpx.ReadTimeout):
        emu.client.get("/avatar/batchsyntheses", params={"api-version": V}, timeout=0.05)
    assert _list(emu).status_code == 200
    assert emu.stats()["faults_injected"]["slow"] == 2


def test_failed_job(make_emu: Any) -> None:
    emu = make_emu(faults={"p_job_fail": 1.0})
    assert emu.put_job("fail-1", emu.job_body()).status_code == 201
    job = emu.wait_job("fail-1")
    assert job["status"] == "Failed"
    assert job["properties"]["error"]["code"] == "InternalServerError"
    assert job["properties"]["failedCount"] == 1 and job["properties"]["succeededCount"] == 0
    assert "outputs" not in job
    spec_schemas.validate(spec_schemas.BATCH_AVATAR, "BatchSynthesis", job)
    assert emu.stats()["faults_injected"]["job_fail"] == 1


def test_faults_are_reproducible_from_the_seed(make_emu: Any) -> None:
    faults = {"seed": 42, "p_500": 0.3, "p_503": 0.2}

    def run() -> list[int]:
        emu = make_emu(faults=faults)
        return [_list(emu).status_code for _ in range(25)]

    first, second = run(), run()
    assert first == second
    assert {200, 500, 503} <= set(first)
    other = make_emu(faults={**faults, "seed": 43})
    assert [_list(other).status_code for _ in range(25)] != first
