"""The one client of the Speech emulator's admin API (``/emulator/``, not an Azure API).

Batch checks, the CLI and the tests use it instead of hand-written HTTP. It runs on plain httpx
with explicit timeouts and raises exactly one error type, :class:`~avatarpipe.errors.ServiceError`
(``status_code`` is ``None`` when the emulator could not be reached; otherwise the status, the
``error.code`` and ``error.message`` of the answer). The key is sent as
``Ocp-Apim-Subscription-Key`` and never appears in a repr or a message.

API::

    with EmulatorAdminClient(url, key="local-emulator-key") as admin:
        admin.seed({"avatars": [{"name": "contoso-ceo", "deployed": True}]})  # -> counts
        admin.config()                         # -> the knobs (GET /emulator/config)
        admin.configure(time_scale=0.0)        # -> the knobs after the change (PUT)
        admin.set_faults(p_429=0.1, seed=7)    # -> knobs; merges into the current faults
        admin.set_clock_offset(3600.0)         # -> knobs; moves the emulator's clock
        admin.stats()                          # -> GET /emulator/stats
        admin.request_times()                  # -> [RequestArrival(at, route, status)]
        admin.list_avatars()                   # -> [{name, createdDateTime, deployment}]
        admin.get_avatar("contoso-ceo")        # -> the avatar, or None when it does not exist
        admin.create_avatar("contoso-ceo")     # -> the avatar (created or existing)
        admin.deploy_avatar("contoso-ceo")     # -> the avatar, deployment NotStarted -> ...
        admin.remove_deployment("contoso-ceo") # -> False when there was no deployment
        admin.delete_avatar("contoso-ceo")     # -> False when there was no such avatar
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from avatarpipe.errors import ServiceError

__all__ = ["DEFAULT_ADMIN_TIMEOUT", "EmulatorAdminClient", "RequestArrival", "max_in_window"]

DEFAULT_ADMIN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class RequestArrival(NamedTuple):
    """One Azure API request as the emulator saw it arrive.

    Attributes:
        at: Arrival time on the emulator's wall clock (epoch seconds).
        route: ``"METHOD /template"``, e.g. ``"GET /avatar/batchsyntheses"``.
        status: The status it was answered with (``"dropped"`` for a reset connection).
    """

    at: float
    route: str
    status: str


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """The most of ``times`` that fall inside any half-open window of ``window_s`` seconds.

    Args:
        times: Times in seconds, in any order.
        window_s: The window's length.

    Returns:
        The largest count (0 for no times).
    """
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


class EmulatorAdminClient:
    """A typed client of the emulator's ``/emulator/`` routes.

    Args:
        base_url: The emulator's URL (the Speech "endpoint"), e.g. ``http://127.0.0.1:8765``.
        key: The emulator's key, when it has one (admin routes need it then).
        timeout: httpx timeouts of every request.
        transport: An httpx transport (tests); the default opens real connections.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_ADMIN_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"EmulatorAdminClient({self.base_url!r})"

    def __enter__(self) -> EmulatorAdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # ------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """Send one admin request (a 404 is returned, not raised, when ``missing_ok``).

        Raises:
            ServiceError: The emulator could not be reached, or answered with an error.
        """
        url = f"/emulator{path}"
        try:
            resp = self._http.request(method, url, json=json_body)
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"emulator admin {method} {url}: the emulator at {self.base_url} could not be "
                f"reached ({type(exc).__name__}: {exc})"
            ) from None
        if resp.status_code >= 400 and not (missing_ok and resp.status_code == 404):
            code, message = _error_of(resp)
            raise ServiceError(
                f"emulator admin {method} {url}: {resp.status_code} {code}: {message}",
                status_code=resp.status_code,
                code=code,
                service_message=message,
                error_code_header=resp.headers.get("x-ms-error-code"),
                request_id=resp.headers.get("apim-request-id"),
            )
        return resp

    def _json(self, method: str, path: str, json_body: Any = None) -> Any:
        return _body_of(self._request(method, path, json_body=json_body), method, path)

    # ------------------------------------------------------------ seed, knobs, stats

    def seed(self, data: Mapping[str, Any]) -> dict[str, int]:
        """Load avatars, custom voice projects/models/endpoints (and a key) into the emulator.

        Args:
            data: ``{key?, avatars: [{name, deployed}], projects, models, endpoints}``.

        Returns:
            How many items of each kind were added.

        Raises:
            ServiceError: The emulator is unreachable or rejected the seed (400).
        """
        body = self._json("POST", "/seed", dict(data))
        counts: dict[str, int] = body["seeded"]
        return counts

    def config(self) -> dict[str, Any]:
        """Return the emulator's knobs (``GET /emulator/config``).

        Raises:
            ServiceError: The emulator is unreachable or answered with an error.
        """
        knobs: dict[str, Any] = self._json("GET", "/config")
        return knobs

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time (``time_scale``, ``max_running``, ``faults`` ...).

        Returns:
            The knobs after the change.

        Raises:
            ServiceError: The emulator is unreachable, or a knob is unknown or invalid (400).
        """
        after: dict[str, Any] = self._json("PUT", "/config", knobs)
        return after

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change injected faults (``seed``, ``p_429``, ``p_reset``, ``fail_next_jobs`` ...).

        The given ones are merged into the current fault settings.

        Returns:
            The knobs after the change.

        Raises:
            ServiceError: The emulator is unreachable, or a setting is invalid (400).
        """
        return self.configure(faults=faults)

    def set_clock_offset(self, seconds: float) -> dict[str, Any]:
        """Set how far the emulator's clock runs ahead of wall time (TTLs, URL expiry).

        Returns:
            The knobs after the change.

        Raises:
            ServiceError: The emulator is unreachable or answered with an error.
        """
        return self.configure(clock_offset_s=seconds)

    def stats(self) -> dict[str, Any]:
        """Return ``GET /emulator/stats``.

        The keys are ``requests_by_route`` (``"METHOD /template"`` -> status -> count),
        ``jobs_created``, ``jobs_expired``, ``jobs_by_status``, ``puts_by_job_id``,
        ``downloads``, ``downloads_by_kind``, ``rate_limited``, ``faults_injected`` and
        ``request_times`` (see :meth:`request_times`).

        Raises:
            ServiceError: The emulator is unreachable or answered with an error.
        """
        data: dict[str, Any] = self._json("GET", "/stats")
        return data

    def request_times(self) -> list[RequestArrival]:
        """The arrival of the newest Azure API requests (up to 4096), oldest first.

        Raises:
            ServiceError: The emulator is unreachable or answered with an error.
        """
        rows = self.stats().get("request_times", [])
        return [RequestArrival(float(at), str(route), str(status)) for at, route, status in rows]

    # ------------------------------------------------------------ custom avatars

    def list_avatars(self) -> list[dict[str, Any]]:
        """Return every custom avatar model with its ``deployment`` (or ``None``).

        Raises:
            ServiceError: The emulator is unreachable or answered with an error.
        """
        avatars: list[dict[str, Any]] = self._json("GET", "/avatars")["value"]
        return avatars

    def get_avatar(self, name: str) -> dict[str, Any] | None:
        """Return one custom avatar model, or ``None`` when it does not exist.

        Raises:
            ServiceError: The emulator is unreachable or answered with an error other than 404.
        """
        path = f"/avatars/{quote(name, safe='')}"
        resp = self._request("GET", path, missing_ok=True)
        if resp.status_code == 404:
            return None
        avatar: dict[str, Any] = _body_of(resp, "GET", path)
        return avatar

    def create_avatar(self, name: str) -> dict[str, Any]:
        """Create a custom avatar model (an existing one is returned unchanged).

        Raises:
            ServiceError: The emulator is unreachable, or the name is invalid (400).
        """
        avatar: dict[str, Any] = self._json("PUT", f"/avatars/{quote(name, safe='')}")
        return avatar

    def deploy_avatar(self, name: str) -> dict[str, Any]:
        """Start deploying a custom avatar (``NotStarted`` -> ``Running`` -> ``Succeeded``).

        Returns:
            The avatar with its new deployment.

        Raises:
            ServiceError: Unreachable; 404 for an unknown model; 400 at the deployment cap.
        """
        avatar: dict[str, Any] = self._json("POST", f"/avatars/{quote(name, safe='')}:deploy")
        return avatar

    def remove_deployment(self, name: str) -> bool:
        """Remove a custom avatar's deployment (the model stays).

        Returns:
            ``False`` when the avatar or its deployment did not exist.

        Raises:
            ServiceError: The emulator is unreachable or answered with another error.
        """
        path = f"/avatars/{quote(name, safe='')}/deployment"
        return self._request("DELETE", path, missing_ok=True).status_code != 404

    def delete_avatar(self, name: str) -> bool:
        """Delete a custom avatar model.

        Returns:
            ``False`` when it did not exist.

        Raises:
            ServiceError: The emulator is unreachable or answered with another error.
        """
        path = f"/avatars/{quote(name, safe='')}"
        return self._request("DELETE", path, missing_ok=True).status_code != 404


def _error_of(resp: httpx.Response) -> tuple[str | None, str]:
    try:
        error = resp.json().get("error") or {}
        return error.get("code"), str(error.get("message") or resp.text[:200])
    except (ValueError, AttributeError):
        return None, resp.text[:200]


def _body_of(resp: httpx.Response, method: str, path: str) -> Any:
    try:
        return resp.json()
    except json.JSONDecodeError:
        raise ServiceError(
            f"emulator admin {method} /emulator{path}: the answer is not JSON",
            status_code=resp.status_code,
        ) from None
