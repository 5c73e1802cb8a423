"""The one exception tree of avatarpipe.

Every error the library raises on purpose is an :class:`AvatarpipeError`. Callers (the CLI, the
flows) tell them apart by class, never by message text::

    AvatarpipeError                      base; ``exit_code`` says what the CLI exits with
    ├── InvalidInputError (exit 2)       bad input that no retry can fix
    │   ├── ConfigError                  a setting (env var, .env, option) is invalid or missing
    │   ├── ScriptError                  a script file, CSV row or template is invalid
    │   ├── RequestValidationError       a request the service would reject (checked before sending)
    │   └── PresetError                  an unknown or invalid post-processing preset
    ├── ServiceError                     a call to the service failed; carries method and URL
    │   ├── ServiceRequestError          no answer: connect error, or a timeout before any response
    │   └── HttpResponseError            the service answered, with an error or a malformed answer
    │       ├── TransientServiceError    429, 5xx: retried with backoff
    │       │   └── RateLimitedError     429 (carries ``retry_after`` when the service sent one)
    │       ├── PermanentServiceError    other 4xx: never retried
    │       │   ├── AuthenticationError  401/403: wrong key, token, region or tier
    │       │   ├── NotFoundError        404: the job, endpoint or model does not exist here
    │       │   └── ConflictError        409, or a re-used id whose request differs
    │       └── ResponseError            a malformed answer (bad JSON, wrong shape, bad nextLink)
    ├── OutcomeError                     a request worked but the work did not
    │   ├── SynthesisFailedError         a batch job ended ``Failed`` (carries the service's error)
    │   ├── WaitTimeoutError             a job, endpoint or deployment did not finish in time
    │   ├── DeploymentError              a custom avatar is not deployed / cannot be deployed
    │   └── CustomVoiceError             a CNV endpoint is missing, elsewhere, or mismatched
    ├── DownloadError                    a result could not be fetched or failed verification
    │   └── ResultExpiredError           storage answered 403/404: the signed URL expired
    ├── MediaError                       ffmpeg failed or a media file is broken (stderr tail)
    └── StorageError                     Blob Storage or the local output tree could not be written

:data:`TRANSIENT_ERRORS` (``ServiceRequestError`` and ``TransientServiceError``) is what the
retry policy retries. Service errors carry the request's method and URL (signatures masked); when
the service answered, also the HTTP status, the service's ``error.code`` and ``error.message``, the
``x-ms-error-code`` header and the ``apim-request-id`` header (quote it to Azure support).
Messages never contain secrets: keys and SAS signatures are redacted before they are formatted.
"""

from __future__ import annotations

import re

__all__ = [
    "AuthenticationError",
    "AvatarpipeError",
    "ConfigError",
    "ConflictError",
    "CustomVoiceError",
    "DeploymentError",
    "DownloadError",
    "HttpResponseError",
    "InvalidInputError",
    "MediaError",
    "NotFoundError",
    "OutcomeError",
    "PermanentServiceError",
    "PresetError",
    "RateLimitedError",
    "RequestValidationError",
    "ResponseError",
    "ResultExpiredError",
    "ScriptError",
    "ServiceError",
    "ServiceRequestError",
    "StorageError",
    "SynthesisFailedError",
    "TRANSIENT_ERRORS",
    "TransientServiceError",
    "WaitTimeoutError",
    "redact",
]

_SECRET_PATTERNS = [
    # SAS signatures and other signed query parameters.
    (re.compile(r"(?i)([?&](?:sig|signature|skoid|sktid|skt|ske|sks|skv)=)[^&\s\"']+"), r"\1***"),
    # Connection-string account keys.
    (re.compile(r"(?i)(AccountKey=)[^;\s\"']+"), r"\1***"),
    # Connection-string SAS tokens (whatever their first parameter).
    (re.compile(r"(?i)(SharedAccessSignature=)[^;\s\"']+"), r"\1***"),
    # Header-style secrets.
    (re.compile(r"(?i)(Ocp-Apim-Subscription-Key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
    (re.compile(r"(?i)(Authorization[\"']?\s*[:=]\s*[\"']?Bearer\s+)[^\s\"',}]+"), r"\1***"),
]


def redact(text: str) -> str:
    """Return ``text`` with SAS signatures, account keys and auth headers replaced by ``***``.

    Args:
        text: Any string that may hold a URL, a header dump or a connection string.

    Returns:
        The same text with every secret-looking value masked.
    """
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class AvatarpipeError(Exception):
    """Base of every error avatarpipe raises on purpose.

    Attributes:
        exit_code: What the CLI exits with for this error (1 failure, 2 invalid input).
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        """The redacted, one-line message."""
        return str(self.args[0]) if self.args else ""


class InvalidInputError(AvatarpipeError):
    """Bad input that no retry can fix; the CLI exits 2."""

    exit_code = 2


class ConfigError(InvalidInputError):
    """A setting (environment variable, ``.env`` entry, option) is invalid or missing."""


class ScriptError(InvalidInputError):
    """A script file, CSV row or template is invalid.

    Attributes:
        file: The file the problem is in, when known.
        field: The dotted path of the field (``scenes[3].text``), when known.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        prefix = ""
        if file:
            prefix += f"{file}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)
        self.file = file
        self.field = field


class RequestValidationError(InvalidInputError):
    """A request that the service would reject, caught before it is sent."""


class PresetError(InvalidInputError):
    """An unknown or invalid post-processing preset."""


class ServiceError(AvatarpipeError):
    """A call to the service failed (see :class:`ServiceRequestError`, :class:`HttpResponseError`).

    Attributes:
        method: The request's HTTP method, when known.
        url: The request's URL with any signature masked, when known.
        status_code: The HTTP status, or ``None`` when no answer came.
        code: The service's ``error.code`` (e.g. ``BadRequest``), when it sent one.
        service_message: The service's ``error.message``, when it sent one.
        error_code_header: The ``x-ms-error-code`` response header.
        request_id: The ``apim-request-id`` response header (quote it to Azure support).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        service_message: str | None = None,
        error_code_header: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = redact(url) if url is not None else None
        self.status_code = status_code
        self.code = code
        self.service_message = service_message
        self.error_code_header = error_code_header
        self.request_id = request_id


class ServiceRequestError(ServiceError):
    """No answer came back: the connection failed, or timed out before any response.

    Like azure-core's ``ServiceRequestError``: retried with backoff. A request that timed out
    after it was sent may still have reached the service, so a create is looked up before it is
    sent again.
    """


class HttpResponseError(ServiceError):
    """The service answered: an error status, or a success whose body cannot be understood."""


class TransientServiceError(HttpResponseError):
    """429 or 5xx: worth retrying with backoff."""


class RateLimitedError(TransientServiceError):
    """429 Too Many Requests.

    Attributes:
        retry_after: Seconds the service asked to wait (``Retry-After``), when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PermanentServiceError(HttpResponseError):
    """A 4xx other than 429: the request is wrong and is never retried."""

    exit_code = 1


class AuthenticationError(PermanentServiceError):
    """401/403: the key, token, region or pricing tier is not accepted."""


class NotFoundError(PermanentServiceError):
    """404: the job, endpoint, model or operation does not exist in this resource."""


class ConflictError(PermanentServiceError):
    """409, or an id re-used with a different request."""


class ResponseError(HttpResponseError):
    """The service's answer could not be understood: bad JSON, wrong shape, foreign ``nextLink``."""


TRANSIENT_ERRORS: tuple[type[ServiceError], ...] = (ServiceRequestError, TransientServiceError)
"""The errors worth retrying: no answer came, or the service answered 429/5xx."""


class OutcomeError(AvatarpipeError):
    """A request was accepted but the work it asked for did not happen."""


class SynthesisFailedError(OutcomeError):
    """A batch synthesis job ended ``Failed``.

    Attributes:
        job_id: The job's id.
        code: The service's ``properties.error.code``.
        service_message: The service's ``properties.error.message``.
    """

    def __init__(
        self, job_id: str, *, code: str | None = None, service_message: str | None = None
    ) -> None:
        detail = f"{code}: {service_message}" if code or service_message else "no error given"
        super().__init__(f"batch synthesis {job_id!r} failed ({detail})")
        self.job_id = job_id
        self.code = code
        self.service_message = service_message


class WaitTimeoutError(OutcomeError):
    """A job, endpoint or deployment did not reach a final state in time.

    Attributes:
        continuation_token: What to resume from (for a batch job, its id).
    """

    def __init__(self, message: str, *, continuation_token: str | None = None) -> None:
        super().__init__(message)
        self.continuation_token = continuation_token


class DeploymentError(OutcomeError):
    """A custom avatar is not deployed in this resource, or cannot be deployed."""


class CustomVoiceError(OutcomeError):
    """A custom neural voice endpoint is missing, in another resource, or does not match."""


class DownloadError(AvatarpipeError):
    """A result file could not be fetched, or failed its size or checksum check."""


class ResultExpiredError(DownloadError):
    """Storage answered 403/404 for a result URL: re-GET the job for a fresh one."""


class MediaError(AvatarpipeError):
    """ffmpeg failed, or a media file is missing, truncated or of the wrong kind.

    Attributes:
        returncode: ffmpeg's exit code, when it ran.
        stderr_tail: The last lines of ffmpeg's stderr, when it ran.
    """

    def __init__(
        self, message: str, *, returncode: int | None = None, stderr_tail: str = ""
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class StorageError(AvatarpipeError):
    """Blob Storage or the local output tree could not be read or written."""
