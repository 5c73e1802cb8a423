from __future__ import annotations

import avatarpipe.errors as errors
from avatarpipe.errors import (
    TRANSIENT_ERRORS,
    AuthenticationError,
    AvatarpipeError,
    HttpResponseError,
    InvalidInputError,
    PermanentServiceError,
    RateLimitedError,
    ResponseError,
    ScriptError,
    ServiceError,
    ServiceRequestError,
    TransientServiceError,
    redact,
)


def test_every_public_error_is_in_the_one_tree_and_documented() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, AvatarpipeError), name
            assert name in doc, f"{name} missing from the tree drawn in errors.py"


def test_transient_and_permanent_service_errors_are_apart() -> None:
    assert issubclass(RateLimitedError, TransientServiceError)
    assert issubclass(AuthenticationError, PermanentServiceError)
    assert not issubclass(PermanentServiceError, TransientServiceError)
    err = RateLimitedError(
        "429", retry_after=3.0, status_code=429, code="TooManyRequests", request_id="r1"
    )
    assert isinstance(err, ServiceError)
    assert (err.retry_after, err.status_code, err.code, err.request_id) == (
        3.0,
        429,
        "TooManyRequests",
        "r1",
    )


def test_no_answer_and_an_answer_are_two_branches() -> None:
    # As azure-core: "the request got no answer" apart from "the service answered".
    assert issubclass(ServiceRequestError, ServiceError)
    assert not issubclass(ServiceRequestError, HttpResponseError)
    for answered in (TransientServiceError, PermanentServiceError, ResponseError):
        assert issubclass(answered, HttpResponseError), answered
        assert not issubclass(answered, ServiceRequestError), answered
    # A malformed answer is an answer, and is not retried.
    assert issubclass(ResponseError, HttpResponseError)
    assert ResponseError not in TRANSIENT_ERRORS
    assert set(TRANSIENT_ERRORS) == {ServiceRequestError, TransientServiceError}


def test_service_errors_carry_method_and_redacted_url() -> None:
    url = "https://acct.blob.core.windows.net/c/x.mp4?sv=2024&sig=SECRETsig"
    err = ServiceRequestError("GET /c/x.mp4: ConnectError", method="GET", url=url)
    assert (err.method, err.status_code) == ("GET", None)
    assert err.url is not None and err.url.startswith("https://acct.blob.core.windows.net/c/x.mp4")
    assert "SECRET" not in err.url and "sig=***" in err.url
    assert ServiceError("x").url is None and ServiceError("x").method is None


def test_exit_codes_tell_invalid_input_from_failure() -> None:
    assert InvalidInputError("x").exit_code == 2
    assert (
        ScriptError("bad", file="a.yaml", field="scenes[3].text").message
        == "a.yaml: scenes[3].text: bad"
    )
    assert PermanentServiceError("x").exit_code == 1


def test_messages_never_carry_secrets() -> None:
    url = "https://acct.blob.core.windows.net/c/0001.mp4?sv=2024-01-01&se=2026&sp=r&sig=SECRETsig%2Babc"
    conn = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=SECRETKEY==;EndpointSuffix=core.windows.net"
    for text in (
        url,
        conn,
        "Ocp-Apim-Subscription-Key: SECRETKEY123",
        "Authorization: Bearer SECRETTOKEN",
    ):
        assert "SECRET" not in redact(text)
        assert "SECRET" not in AvatarpipeError(f"failed: {text}").message
