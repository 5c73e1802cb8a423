from __future__ import annotations

import avatarpipe.errors as errors
from avatarpipe.errors import (
    AuthenticationError,
    AvatarpipeError,
    InvalidInputError,
    PermanentServiceError,
    RateLimitedError,
    ScriptError,
    ServiceError,
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
