"""Client behaviour against ``httpx.MockTransport``: auth, paging, retries, errors, the factory."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from avatarpipe.connect import open_speech
from avatarpipe.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    HttpResponseError,
    NotFoundError,
    PermanentServiceError,
    RateLimitedError,
    ResponseError,
    ServiceRequestError,
    TransientServiceError,
)
from avatarpipe.settings import Settings
from avatarpipe.speech import Pipeline, RetryPolicy
from avatarpipe.speech.models import BatchSynthesis, Status

UUID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
JOB = BatchSynthesis.model_validate(
    {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hello."}],
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "avatarConfig": {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "casual-sitting"},
    }
)


# ---------------------------------------------------------------- auth and api-version


def test_key_auth_header_and_api_version(make_client: Any, fake: Any) -> None:
    client, service = make_client(lambda r: fake.json_response(200, fake.job_body("job-1")))
    client.batch.get_synthesis("job-1")
    client.voice.get_operation("op-1")
    first, second = service.requests
    for request in service.requests:
        assert request.headers["Ocp-Apim-Subscription-Key"] == fake.key
        assert "Authorization" not in request.headers
    assert first.url.path == "/avatar/batchsyntheses/job-1"
    assert first.url.params["api-version"] == "2024-08-01"
    assert second.url.path == "/customvoice/operations/op-1"
    assert second.url.params["api-version"] == "2026-01-01"


def test_bearer_token_callable_is_called_per_attempt(make_client: Any, fake: Any) -> None:
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    answers = iter([fake.error_response(503, "ServiceUnavailable", "busy")])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or fake.json_response(200, fake.job_body("job-1"))

    client, service = make_client(handler, key=None, token=lambda: next(tokens))
    client.batch.get_synthesis("job-1")
    assert [r.headers["Authorization"] for r in service.requests] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert all("Ocp-Apim-Subscription-Key" not in r.headers for r in service.requests)


def test_fixed_bearer_token(make_client: Any, fake: Any) -> None:
    client, service = make_client(
        lambda r: fake.json_response(200, fake.job_body("job-1")), key=None, token="abc.def"
    )
    client.batch.get_synthesis("job-1")
    assert service.requests[0].headers["Authorization"] == "Bearer abc.def"
    assert "Ocp-Apim-Subscription-Key" not in service.requests[0].headers


def test_key_and_token_together_rejected() -> None:
    both = Settings(
        speech_endpoint="https://x.example",
        speech_key="k",  # type: ignore[arg-type]
        speech_token="t",  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError, match="not both"):
        open_speech(both)
    with pytest.raises(ConfigError, match="https"):
        Pipeline("x.example")


def test_open_speech_from_settings() -> None:
    settings = Settings(
        speech_endpoint="https://westus2.api.cognitive.microsoft.com/",
        speech_key="secret-key",  # type: ignore[arg-type]
        max_attempts=3,
        requests_per_minute=2,
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "op-1", "status": "Running"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = open_speech(settings, http=http)
        assert client.pipeline.retry.max_attempts == 3
        assert client.admin is None, "an endpoint in the settings means Azure: no admin API"
        assert client.batch.get_operation("op-1").status is Status.RUNNING
    assert seen[0].headers["Ocp-Apim-Subscription-Key"] == "secret-key"
    assert str(seen[0].url).startswith("https://westus2.api.cognitive.microsoft.com/avatar/")
    assert "secret-key" not in repr(client)
    with pytest.raises(ConfigError, match="AVATARPIPE_SPEECH_ENDPOINT"):
        open_speech(Settings())


def test_timeouts_are_explicit(make_client: Any, fake: Any) -> None:
    client, service = make_client(
        lambda r: fake.json_response(200, fake.job_body("j-1")),
        timeout=httpx.Timeout(7.0, connect=2.0),
    )
    client.batch.get_synthesis("j-1")
    timeouts = service.requests[0].extensions["timeout"]
    assert timeouts == {"connect": 2.0, "read": 7.0, "write": 7.0, "pool": 7.0}


# ---------------------------------------------------------------- paging


def test_list_follows_next_link_over_three_pages(make_client: Any, fake: Any) -> None:
    base = f"{fake.endpoint}/avatar/batchsyntheses/"

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        ids = [f"job-{skip + i}" for i in range(2)]
        body: dict[str, Any] = {"value": [fake.job_body(i) for i in ids]}
        if skip < 4:
            body["nextLink"] = f"{base}?maxpagesize=2&skip={skip + 2}&api-version=2024-08-01"
        return fake.json_response(200, body)

    client, service = make_client(handler)
    jobs = list(client.batch.list_syntheses(maxpagesize=2))
    assert [j.id for j in jobs] == [f"job-{i}" for i in range(6)]
    assert len(service.requests) == 3 == client.pipeline.request_count
    first = service.requests[0]
    assert first.url.path == "/avatar/batchsyntheses"
    assert dict(first.url.params) == {"skip": "0", "maxpagesize": "2", "api-version": "2024-08-01"}
    assert [r.url.params["skip"] for r in service.requests] == ["0", "2", "4"]
    # nextLink is followed as given: api-version is not duplicated
    assert all(r.url.params.get_list("api-version") == ["2024-08-01"] for r in service.requests)
    assert all(r.headers["Ocp-Apim-Subscription-Key"] == fake.key for r in service.requests)


def test_list_page_returns_next_link(make_client: Any, fake: Any) -> None:
    link = f"{fake.endpoint}/avatar/batchsyntheses/?skip=5&maxpagesize=5&api-version=2024-08-01"
    client, service = make_client(
        lambda r: fake.json_response(200, {"value": [fake.job_body("a-1")], "nextLink": link})
    )
    jobs, next_link = client.batch.list_syntheses_page(skip=0, maxpagesize=5)
    assert [j.id for j in jobs] == ["a-1"] and next_link == link
    client.batch.list_syntheses_page(next_link=next_link)
    assert str(service.requests[1].url) == link


def test_next_link_to_another_host_is_refused(make_client: Any, fake: Any) -> None:
    client, service = make_client(
        lambda r: fake.json_response(
            200,
            {"value": [], "nextLink": "https://evil.example/avatar/batchsyntheses?skip=2&sig=S"},
        )
    )
    with pytest.raises(ResponseError, match="another host"):
        list(client.batch.list_syntheses())
    assert len(service.requests) == 1


def test_list_endpoints_with_filter(make_client: Any, fake: Any) -> None:
    endpoint = {"id": UUID, "projectId": "Jessica", "modelId": "Jessica", "status": "Succeeded"}
    client, service = make_client(
        lambda r: fake.json_response(
            200, {"value": [endpoint] if "endpoints" in r.url.path else []}
        )
    )
    (found,) = client.voice.list_endpoints(filter="projectId eq 'Jessica'")
    assert found.id == UUID
    request = service.requests[0]
    assert request.url.path == "/customvoice/endpoints"
    assert request.url.params["filter"] == "projectId eq 'Jessica'"
    assert request.url.params["api-version"] == "2026-01-01"
    list(client.voice.list_projects())
    list(client.voice.list_models(filter="locale eq 'en-US'"))
    assert [r.url.path for r in service.requests[1:]] == [
        "/customvoice/projects",
        "/customvoice/models",
    ]
    assert "filter" not in service.requests[1].url.params


# ---------------------------------------------------------------- retries


def _sequence(*answers: httpx.Response | Exception) -> Any:
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_retries_500_503_then_succeeds_with_backoff(
    make_client: Any, fake: Any, clock: Any
) -> None:
    client, service = make_client(
        _sequence(
            fake.error_response(500, "InternalServerError", "oops"),
            fake.error_response(503, "ServiceUnavailable", "busy"),
            fake.json_response(200, fake.job_body("job-1")),
        )
    )
    assert client.batch.get_synthesis("job-1").id == "job-1"
    assert len(service.requests) == 3 == client.pipeline.request_count
    assert clock.sleeps == [1.0, 2.0]


def test_retry_after_seconds_is_honoured(make_client: Any, fake: Any, clock: Any) -> None:
    client, _ = make_client(
        _sequence(
            fake.error_response(429, "TooManyRequests", "slow down", **{"Retry-After": "7"}),
            fake.error_response(429, "TooManyRequests", "slow down"),
            fake.json_response(200, fake.job_body("job-1")),
        )
    )
    client.batch.get_synthesis("job-1")
    # Retry-After when sent; exponential backoff (2nd attempt: 2 s) when not
    assert clock.sleeps == [7.0, 2.0]


def test_retry_after_http_date_and_cap(make_client: Any, fake: Any, clock: Any) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client, _ = make_client(
        _sequence(
            fake.error_response(429, "TooManyRequests", "x", **{"Retry-After": later}),
            fake.error_response(429, "TooManyRequests", "x", **{"Retry-After": "3600"}),
            fake.json_response(200, fake.job_body("job-1")),
        ),
        retry=RetryPolicy(sleep=clock.sleep, clock=clock, jitter=0.0, max_delay_s=45.0),
    )
    client.batch.get_synthesis("job-1")
    date_wait, capped = clock.sleeps
    assert 25.0 <= date_wait <= 30.0
    assert capped == 45.0


def test_transport_errors_are_retried(make_client: Any, fake: Any, clock: Any) -> None:
    client, service = make_client(
        _sequence(
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("read timed out"),
            fake.json_response(200, {"id": "op-1", "status": "Succeeded"}),
        )
    )
    assert client.batch.get_operation("op-1").status is Status.SUCCEEDED
    assert len(service.requests) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_no_answer_is_a_request_error_with_method_and_url(
    make_client: Any, fake: Any, clock: Any
) -> None:
    client, service = make_client(
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("connection refused")),
        retry=RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock, jitter=0.0),
    )
    with pytest.raises(ServiceRequestError) as info:
        client.batch.get_synthesis("job-1")
    err = info.value
    assert not isinstance(err, HttpResponseError), "no answer came: not a response error"
    assert len(service.requests) == 2 and clock.sleeps == [1.0], "no answer is retried"
    assert err.method == "GET" and err.status_code is None
    assert err.url == f"{fake.endpoint}/avatar/batchsyntheses/job-1?api-version=2024-08-01"
    assert str(err).startswith("GET /avatar/batchsyntheses/job-1: ConnectError")


def test_answers_carry_method_and_url(make_client: Any, fake: Any) -> None:
    client, _ = make_client(lambda r: fake.error_response(409, "Conflict", "id in use", "r-7"))
    with pytest.raises(ConflictError) as info:
        client.batch.create_synthesis("job-1", JOB)
    assert isinstance(info.value, HttpResponseError)
    assert info.value.method == "PUT"
    assert info.value.url == f"{fake.endpoint}/avatar/batchsyntheses/job-1?api-version=2024-08-01"
    bad, _ = make_client(lambda r: httpx.Response(200, text="{not json"))
    with pytest.raises(ResponseError) as malformed:
        bad.voice.get_endpoint(UUID)
    assert isinstance(malformed.value, HttpResponseError), "a malformed answer is an answer"
    assert (malformed.value.method, malformed.value.status_code) == ("GET", 200)
    assert malformed.value.url is not None
    assert malformed.value.url.startswith(f"{fake.endpoint}/customvoice/endpoints/{UUID}")


def test_permanent_400_is_not_retried(make_client: Any, fake: Any, clock: Any) -> None:
    client, service = make_client(
        lambda r: fake.error_response(400, "BadRequest", "The inputs is required.", "abc")
    )
    with pytest.raises(PermanentServiceError) as info:
        client.batch.create_synthesis("my-job", JOB)
    assert len(service.requests) == 1 and clock.sleeps == []
    err = info.value
    assert type(err) is PermanentServiceError
    assert str(err) == (
        "PUT /avatar/batchsyntheses/my-job: 400 BadRequest: The inputs is required. "
        "(apim-request-id: abc)"
    )
    assert (err.status_code, err.code, err.service_message) == (
        400,
        "BadRequest",
        "The inputs is required.",
    )
    assert (err.error_code_header, err.request_id) == ("BadRequest", "abc")


def test_attempts_bound(make_client: Any, fake: Any, clock: Any) -> None:
    client, service = make_client(
        lambda r: fake.error_response(503, "ServiceUnavailable", "busy"),
        retry=RetryPolicy(max_attempts=4, sleep=clock.sleep, clock=clock, jitter=0.0),
    )
    with pytest.raises(TransientServiceError) as info:
        client.batch.get_synthesis("job-1")
    assert len(service.requests) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert info.value.status_code == 503
    assert any("4 attempt" in note for note in info.value.__notes__)


def test_total_time_bound(make_client: Any, fake: Any, clock: Any) -> None:
    client, service = make_client(
        lambda r: fake.error_response(500, "InternalServerError", "down"),
        retry=RetryPolicy(
            max_attempts=50,
            base_delay_s=4.0,
            max_total_s=10.0,
            sleep=clock.sleep,
            clock=clock,
            jitter=0.0,
        ),
    )
    with pytest.raises(TransientServiceError):
        client.batch.get_synthesis("job-1")
    assert clock.sleeps == [4.0, 6.0]  # the second wait is cut to what is left of 10 s
    assert len(service.requests) == 3


def test_rate_limited_error_when_retries_run_out(make_client: Any, fake: Any, clock: Any) -> None:
    client, _ = make_client(
        lambda r: fake.error_response(429, "TooManyRequests", "quota", **{"Retry-After": "2"}),
        retry=RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock),
    )
    with pytest.raises(RateLimitedError) as info:
        client.batch.get_synthesis("job-1")
    assert info.value.retry_after == 2.0 and info.value.status_code == 429
    assert clock.sleeps == [2.0]


def test_budget_is_taken_once_per_http_attempt(make_client: Any, fake: Any) -> None:
    budget = fake.CountingBudget()
    client, service = make_client(
        _sequence(
            fake.error_response(503, "ServiceUnavailable", "busy"),
            httpx.ConnectError("refused"),
            fake.json_response(
                200,
                {
                    "value": [fake.job_body("a-1")],
                    "nextLink": f"{fake.endpoint}/avatar/batchsyntheses"
                    "?skip=1&maxpagesize=1&api-version=2024-08-01",
                },
            ),
            fake.json_response(200, {"value": [fake.job_body("a-2")]}),
        ),
        budget=budget,
    )
    assert [j.id for j in client.batch.list_syntheses(maxpagesize=1)] == ["a-1", "a-2"]
    assert budget.calls == len(service.requests) == client.pipeline.request_count == 4


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (415, PermanentServiceError),
        (429, RateLimitedError),
        (500, TransientServiceError),
        (502, TransientServiceError),
    ],
)
def test_error_mapping(
    status: int, kind: type[Exception], make_client: Any, fake: Any, clock: Any
) -> None:
    client, service = make_client(
        lambda r: fake.error_response(status, "SomeCode", "what happened", "rid-9"),
        retry=RetryPolicy(max_attempts=1, sleep=clock.sleep, clock=clock),
    )
    with pytest.raises(kind) as info:
        client.voice.get_endpoint(UUID)
    err = info.value
    assert type(err) is kind
    assert err.status_code == status  # type: ignore[attr-defined]
    assert err.code == "SomeCode"  # type: ignore[attr-defined]
    assert err.service_message == "what happened"  # type: ignore[attr-defined]
    assert err.error_code_header == "SomeCode"  # type: ignore[attr-defined]
    assert err.request_id == "rid-9"  # type: ignore[attr-defined]
    assert str(err).startswith(
        f"GET /customvoice/endpoints/{UUID}: {status} SomeCode: what happened"
    )
    assert len(service.requests) == 1


def test_unwrapped_error_body(make_client: Any, fake: Any) -> None:
    body = {"code": "Forbidden", "message": 'Only "Standard" subscriptions are valid.'}
    client, _ = make_client(lambda r: httpx.Response(403, json=body))
    with pytest.raises(AuthenticationError) as info:
        client.batch.get_synthesis("job-1")
    assert info.value.code == "Forbidden"
    assert info.value.service_message == body["message"]
    assert info.value.request_id is None


def test_non_json_error_body(make_client: Any, clock: Any) -> None:
    client, _ = make_client(
        lambda r: httpx.Response(
            502, text="<html>Bad Gateway</html>", headers={"apim-request-id": "r2"}
        ),
        retry=RetryPolicy(max_attempts=1, sleep=clock.sleep, clock=clock),
    )
    with pytest.raises(TransientServiceError) as info:
        client.batch.get_synthesis("job-1")
    assert info.value.status_code == 502 and info.value.code is None
    assert "Bad Gateway" in str(info.value) and "(apim-request-id: r2)" in str(info.value)


def test_malformed_success_body_is_a_response_error(make_client: Any) -> None:
    client, _ = make_client(lambda r: httpx.Response(200, text="{not json"))
    with pytest.raises(ResponseError, match="not JSON"):
        client.batch.get_synthesis("job-1")
    client2, _ = make_client(lambda r: httpx.Response(200, json={"id": "x"}))
    with pytest.raises(ResponseError, match="BatchSynthesis"):
        client2.batch.get_synthesis("job-1")


def test_missing_job_404_and_204(make_client: Any, fake: Any) -> None:
    client, _ = make_client(lambda r: fake.error_response(404, "NotFound", "no such job"))
    assert client.batch.find_synthesis("job-1") is None
    with pytest.raises(NotFoundError):
        client.batch.get_synthesis("job-1")
    client.batch.delete_synthesis("job-1")  # already gone is fine
    client204, _ = make_client(lambda r: httpx.Response(204))
    assert client204.batch.find_synthesis("job-1") is None
    with pytest.raises(NotFoundError):
        client204.batch.get_synthesis("job-1")
    client204.batch.delete_synthesis("job-1")


def test_endpoint_lifecycle_calls(make_client: Any, fake: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "DELETE":
            return httpx.Response(204)
        status = {"suspend": "Disabling", "resume": "Running"}.get(
            path.rsplit(":", 1)[-1], "Succeeded"
        )
        code = 202 if ":" in path else 200
        body = {"id": UUID, "projectId": "Jessica", "modelId": "Jessica", "status": status}
        return httpx.Response(code, json=body)

    client, service = make_client(handler)
    assert client.voice.get_endpoint(UUID).status.value == "Succeeded"  # type: ignore[union-attr]
    assert client.voice.suspend_endpoint(UUID).status.value == "Disabling"  # type: ignore[union-attr]
    assert client.voice.resume_endpoint(UUID).status.value == "Running"  # type: ignore[union-attr]
    client.voice.delete_endpoint(UUID)
    assert [(r.method, r.url.path) for r in service.requests] == [
        ("GET", f"/customvoice/endpoints/{UUID}"),
        ("POST", f"/customvoice/endpoints/{UUID}:suspend"),
        ("POST", f"/customvoice/endpoints/{UUID}:resume"),
        ("DELETE", f"/customvoice/endpoints/{UUID}"),
    ]
    assert service.requests[1].content == b""
    client404, _ = make_client(lambda r: fake.error_response(404, "NotFound", "gone"))
    assert client404.voice.find_endpoint(UUID) is None


def test_project_and_model_get(make_client: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/projects/" in request.url.path:
            return httpx.Response(
                200, json={"id": "Jessica", "kind": "ProfessionalVoice", "locale": "en-US"}
            )
        return httpx.Response(
            200, json={"id": "Jessica", "voiceName": "JessicaNeural", "status": "Succeeded"}
        )

    client, _ = make_client(handler)
    assert client.voice.get_project("Jessica").locale == "en-US"
    assert client.voice.get_model("Jessica").voice_name == "JessicaNeural"


# ---------------------------------------------------------------- create


def test_create_sends_operation_id_and_expects_201(make_client: Any, fake: Any) -> None:
    client, service = make_client(lambda r: fake.json_response(201, fake.job_body("job-1")))
    created = client.batch.create_synthesis("job-1", JOB, operation_id="op-123")
    assert created.status is Status.NOT_STARTED
    assert service.requests[0].headers["Operation-Id"] == "op-123"
    assert json.loads(service.requests[0].content) == JOB.to_request()


def test_create_after_transient_failure_reattaches_instead_of_putting_twice(
    make_client: Any, fake: Any
) -> None:
    client, service = make_client(
        _sequence(
            httpx.ReadTimeout("timed out after the PUT was sent"),
            fake.json_response(200, fake.job_body("job-1", "Running")),
        )
    )
    job = client.batch.create_synthesis("job-1", JOB)
    assert job.status is Status.RUNNING
    assert [r.method for r in service.requests] == ["PUT", "GET"]


# ---------------------------------------------------------------- secrets


def test_secrets_never_in_errors_or_logs(
    make_client: Any, fake: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Access denied for Ocp-Apim-Subscription-Key: {fake.key}"
    client, service = make_client(
        _sequence(
            fake.error_response(503, "ServiceUnavailable", f"busy, key={fake.key}"),
            fake.error_response(401, "Unauthorized", echo),
        )
    )
    with pytest.raises(AuthenticationError) as info:
        client.batch.get_synthesis("job-1")
    assert service.requests[0].headers["Ocp-Apim-Subscription-Key"] == fake.key
    assert fake.key not in str(info.value)
    assert fake.key not in (info.value.service_message or "")
    assert fake.key not in repr(client)
    assert "HTTP Request" in caplog.text, "httpx logging was captured"
    assert fake.key not in caplog.text
