"""Configuration of the local Speech service emulator.

Everything here is a knob of the emulator itself; none of it exists in Azure. The render-time
model, the rate limit and the faults can also be changed while it runs (``PUT /emulator/config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RATE_LIMIT_KINDS", "EmulatorConfig", "FaultConfig"]

RATE_LIMIT_KINDS = ("create", "read", "list", "delete", "action")
"""Operation kinds a rate limit can be set for (``rate_limits``): ``create`` is a PUT, ``read`` a
GET of one resource or operation, ``list`` a paged GET, ``delete`` a DELETE and ``action`` a
``:suspend``/``:resume`` POST."""


class FaultConfig(BaseModel):
    """Seeded fault injection on the Azure API routes (``/avatar/...``, ``/customvoice/...``).

    Each probability is drawn per request (per job for ``p_job_fail``, per minted result URL for
    ``p_expired_url``) from one ``random.Random(seed)``, so a run with the same requests in the same
    order injects the same faults.

    Attributes:
        seed: Seed of the fault generator.
        p_429: Answer 429 TooManyRequests (counted apart from the rate limit's 429s).
        p_500: Answer 500 InternalServerError.
        p_503: Answer 503 ServiceUnavailable.
        p_reset: Close the connection without any response.
        p_slow: Wait ``slow_s`` seconds before handling the request.
        slow_s: The delay of a slow response.
        p_job_fail: A started job fails (``status: Failed``, ``properties.error`` set).
        p_expired_url: A minted result URL is already expired (storage answers 403); the next GET
            of the job mints a fresh one.
        fail_next_jobs: The next N jobs to start fail, whatever the draws (deterministic tests).
        fail_next_deployments: The next N custom avatar deployments end ``Failed``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = 0
    p_429: float = Field(default=0.0, ge=0.0, le=1.0)
    p_500: float = Field(default=0.0, ge=0.0, le=1.0)
    p_503: float = Field(default=0.0, ge=0.0, le=1.0)
    p_reset: float = Field(default=0.0, ge=0.0, le=1.0)
    p_slow: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_s: float = Field(default=2.0, ge=0.0)
    p_job_fail: float = Field(default=0.0, ge=0.0, le=1.0)
    p_expired_url: float = Field(default=0.0, ge=0.0, le=1.0)
    fail_next_jobs: int = Field(default=0, ge=0)
    fail_next_deployments: int = Field(default=0, ge=0)


class EmulatorConfig(BaseModel):
    """How one emulator instance runs.

    Attributes:
        host: Address to bind.
        port: Port to bind; ``0`` picks a free one.
        state_dir: Where the SQLite database and the rendered results live.
        seed: A YAML (or JSON) seed file loaded at start (avatars, CNV resources, key).
        seed_exact: The seed file is the whole resource (a declared resource file): avatars
            and CNV items it does not declare are removed at start.
        time_scale: Multiplies every modelled duration: ``1.0`` is the modelled real durations,
            ``0`` is as fast as possible.
        key: The resource key. ``None`` accepts any key, but one of the two auth headers is
            still required.
        queue_delay_s: Modelled wait of a job in ``NotStarted`` before it may start.
        render_s_per_video_s: Modelled seconds of ``Running`` per second of video.
        cnv_model_training_s: Modelled training time of a CNV model created through the API.
        cnv_endpoint_deploy_s: Modelled deploy, suspend and resume time of a CNV endpoint.
        avatar_deploy_s: Modelled deploy time of a custom avatar.
        max_running: Jobs ``Running`` at once per resource (Azure: 200); the rest wait.
        max_cnv_endpoints: CNV endpoints per resource (Azure: 50).
        max_avatar_deployments: Custom avatar endpoints per resource (Azure: 10).
        render_workers: Threads that render at once.
        rate_limit_per_minute: Requests per minute on the Azure API routes (all kinds), ``None``
            for no limit.
        rate_limits: Per-kind limits (see ``RATE_LIMIT_KINDS``), each with its own budget, on
            top of ``rate_limit_per_minute``.
        result_url_ttl_s: Lifetime of a minted result URL.
        faults: Fault injection.
        renderer: ``real`` (the lip-synced renderer in ``emulator/render``) or ``placeholder``.
        public_base_url: Base of ``nextLink``, ``Operation-Location`` and result URLs; default
            ``http://{host}:{port}``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    state_dir: Path = Path(".avatarpipe/emulator")
    seed: Path | None = None
    seed_exact: bool = False
    time_scale: float = Field(default=1.0, ge=0.0)
    key: str | None = None
    queue_delay_s: float = Field(default=5.0, ge=0.0)
    render_s_per_video_s: float = Field(default=3.0, ge=0.0)
    cnv_model_training_s: float = Field(default=600.0, ge=0.0)
    cnv_endpoint_deploy_s: float = Field(default=120.0, ge=0.0)
    avatar_deploy_s: float = Field(default=120.0, ge=0.0)
    max_running: int = Field(default=200, ge=1)
    max_cnv_endpoints: int = Field(default=50, ge=1)
    max_avatar_deployments: int = Field(default=10, ge=1)
    render_workers: int = Field(default=2, ge=1)
    rate_limit_per_minute: float | None = Field(default=None, gt=0)
    rate_limits: dict[Literal["create", "read", "list", "delete", "action"], float] = Field(
        default_factory=dict
    )
    result_url_ttl_s: float = Field(default=3600.0, gt=0)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    renderer: Literal["real", "placeholder"] = "real"
    public_base_url: str | None = None

    def base_url(self, bound_port: int | None = None) -> str:
        """Return the public base URL (no trailing slash).

        Args:
            bound_port: The port actually bound, when ``port`` was 0.

        Returns:
            ``public_base_url`` when set, else ``http://{host}:{port}``.
        """
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{bound_port or self.port}"

    def scaled(self, seconds: float) -> float:
        """Return a modelled duration scaled by ``time_scale``."""
        return seconds * self.time_scale
