"""What every part of the emulated resource shares: its state, clock, knobs and key.

:class:`ResourceCore` holds the configuration (replaced as a whole when knobs change), the store,
the clock, the rate limiter and fault injector, and the wake-up event of the worker. The parts by
concern (``jobs.py``, ``voices.py``, ``avatars.py``, ``operations.py``, ``sas.py``) each hold
the core and read what they need from it at the time they need it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from avatarpipe.emulator.apierror import bad_request
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.faults import FaultInjector, RateLimiter
from avatarpipe.emulator.models import pydantic_message
from avatarpipe.emulator.store import Store

__all__ = [
    "INVALID_KEY_MESSAGE",
    "MISSING_KEY_MESSAGE",
    "ResourceCore",
    "body_hash",
    "iso",
    "parse_body",
    "parse_iso",
]

# Azure's own wording (API Management in front of every Cognitive Services resource).
MISSING_KEY_MESSAGE = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
INVALID_KEY_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
KNOBS = {
    "time_scale",
    "queue_delay_s",
    "render_s_per_video_s",
    "cnv_model_training_s",
    "cnv_endpoint_deploy_s",
    "avatar_deploy_s",
    "max_running",
    "rate_limit_per_minute",
    "rate_limits",
    "result_url_ttl_s",
    "faults",
    "clock_offset_s",
}


def iso(ts: float) -> str:
    """Format a Unix time as the service does: ISO 8601 UTC with ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """Parse an ISO 8601 time (``Z`` or an offset) into Unix seconds.

    Raises:
        ValueError: Not an ISO 8601 time.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def body_hash(body: Any) -> str:
    """A digest of a request, for "is this the same request again?"."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object.

    Raises:
        ApiError: 400 when it is not JSON or not an object.
    """
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


class ResourceCore:
    """The shared state of one emulated Speech resource."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        """Create the core over an opened store.

        Args:
            config: The emulator's configuration.
            store: Its database.
        """
        self.config = config
        self.store = store
        self.base_url = config.base_url()
        self.key: str | None = config.key
        self.clock_offset_s = 0.0
        self.secret = base64.b64decode(
            store.meta("url_secret", lambda: base64.b64encode(secrets.token_bytes(32)).decode())
        )
        self.resource_hex = store.meta("resource_hex", lambda: uuid.uuid4().hex)
        self.results_dir = config.state_dir / "results"
        self.lock = threading.RLock()
        self.limiter = RateLimiter(
            config.rate_limit_per_minute, {str(k): v for k, v in config.rate_limits.items()}
        )
        self.faults = FaultInjector(config.faults)
        self.wakeup = threading.Event()

    # ------------------------------------------------------------ clock and knobs

    def now(self) -> float:
        """The emulator's clock (wall time plus ``clock_offset_s``)."""
        return time.time() + self.clock_offset_s

    def reconfigure(self, changes: dict[str, Any]) -> None:
        """Apply run-time knob changes (``PUT /emulator/config``).

        Args:
            changes: Any of ``time_scale``, ``queue_delay_s``, ``render_s_per_video_s``,
                ``cnv_model_training_s``, ``cnv_endpoint_deploy_s``, ``avatar_deploy_s``,
                ``max_running``, ``rate_limit_per_minute``, ``rate_limits``,
                ``result_url_ttl_s``, ``faults``, ``clock_offset_s``.

        Raises:
            ApiError: An unknown knob or an invalid value (400).
        """
        unknown = set(changes) - KNOBS
        if unknown:
            raise bad_request(f"unknown emulator knob(s): {', '.join(sorted(unknown))}")
        with self.lock:
            data = self.config.model_dump()
            for name, value in changes.items():
                if name == "faults" and isinstance(value, dict):
                    data["faults"] = {**data["faults"], **value}
                elif name != "clock_offset_s":
                    data[name] = value
            try:
                new = EmulatorConfig.model_validate(data)
            except ValidationError as exc:
                raise bad_request(pydantic_message(exc)[0]) from None
            self.config = new
            if "clock_offset_s" in changes:
                try:
                    self.clock_offset_s = float(changes["clock_offset_s"])
                except (TypeError, ValueError):
                    raise bad_request("clock_offset_s: must be a number") from None
            if {"rate_limit_per_minute", "rate_limits"} & set(changes):
                self.limiter = RateLimiter(
                    new.rate_limit_per_minute, {str(k): v for k, v in new.rate_limits.items()}
                )
            if "faults" in changes:
                self.faults = FaultInjector(new.faults)
        self.wakeup.set()

    def knobs(self) -> dict[str, Any]:
        """Return the current knobs (no key)."""
        data = self.config.model_dump(mode="json", exclude={"key"})
        data["clock_offset_s"] = self.clock_offset_s
        data["base_url"] = self.base_url
        return data

    # ------------------------------------------------------------ auth

    def auth_problem(self, headers: dict[str, str]) -> str | None:
        """Check ``Ocp-Apim-Subscription-Key`` or ``Authorization: Bearer``.

        With no key configured any non-empty value is accepted. A bearer token is accepted when
        it equals the key (the emulator's stand-in for an Entra token).

        Args:
            headers: The request headers, lower-case names.

        Returns:
            ``None`` when the caller is let in, else Azure's 401 message (a missing key and a
            wrong key are told apart, as Azure does).
        """
        key = headers.get("ocp-apim-subscription-key")
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        given = key if key is not None else token
        if not given:
            return MISSING_KEY_MESSAGE
        if self.key is None or hmac.compare_digest(given.encode(), self.key.encode()):
            return None
        return INVALID_KEY_MESSAGE

    # ------------------------------------------------------------ modelled transitions

    def phases(self, seconds: float, *steps: str) -> list[list[Any]]:
        """Plan status steps over ``seconds``: the first at a quarter, the last at the end.

        Each phase is ``[start, unscaled offset, status]``; it is due at
        ``start + offset * time_scale`` with the scale in force when it is checked, so a change of
        ``time_scale`` applies to transitions already planned.
        """
        now = self.now()
        if len(steps) == 1:
            return [[now, seconds, steps[0]]]
        return [[now, seconds * (0.25 if i == 0 else 1.0), s] for i, s in enumerate(steps)]

    def due(self, phase: list[Any], now: float) -> bool:
        """Whether a planned phase is due at ``now``."""
        return float(phase[0]) + self.config.scaled(float(phase[1])) <= now
