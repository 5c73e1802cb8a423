"""The emulated Speech resource: validation, state changes and response shapes.

The HTTP layer (``app.py``) parses requests and calls :class:`EmulatedResource`; the worker
(``worker.py``) moves jobs and deployments through their states. Decisions where Azure's docs and
specs are ambiguous (``reference/azure-speech-api.md`` §9) are taken here and listed in the
emulator's README:

1. Rate limit: off by default; configurable overall and per operation kind
   (``create``/``read``/``list``/``delete``/``action``), because it is unclear whether Azure's
   "2 requests per minute" counts every call or only creates.
2. TTL default: 744 hours (the spec's ``default: 774`` is a typo).
3. GET/DELETE of an unknown job: 404 ``NotFound``. The spec documents only 200/204 plus error
   responses, and a 404 lets a client tell "gone" from "done"; a client written from the docs
   must handle both anyway.
4. Re-PUT of an existing job id: 400 ``BadRequest`` ("already exists"), whatever the body: ids
   are unique in a resource, and a client re-attaches with a GET.
5. ``internalId`` is in every job response; ``useBuiltInVoice`` and ``photoAvatarBaseModel`` are
   accepted and echoed.
6. Ids follow the spec's pattern (``.`` allowed).
7. Either auth header alone is enough.
8. Times are always written with ``Z``.
9. Result URLs live ``result_url_ttl_s`` (default one hour) and are minted on every GET.
10. Custom avatar deployment exists only under ``/emulator/``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError

from avatarpipe.emulator.apierror import ApiError, bad_request, not_found
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.faults import FaultInjector, RateLimiter
from avatarpipe.emulator.store import AvatarModel, CvResource, Job, Operation, Store
from avatarpipe.errors import RequestValidationError
from avatarpipe.speech.models import (
    MAX_PAYLOAD_BYTES,
    BatchSynthesis,
    Endpoint,
    Model,
    Project,
    check_resource_id,
)

__all__ = [
    "AVATAR_API_VERSIONS",
    "CUSTOM_VOICE_API_VERSIONS",
    "EmulatedResource",
    "iso",
    "DEFAULT_TTL_HOURS",
]

AVATAR_API_VERSIONS = ("2024-08-01", "2024-04-15-preview")
CUSTOM_VOICE_API_VERSIONS = ("2026-01-01", "2024-02-01-preview")
DEFAULT_TTL_HOURS = 744
RESULT_CONTAINER = "batchsynthesis-output"
AVATAR_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
AVATAR_CAP_MESSAGE = (
    "Each Speech resource can have at most {cap} custom avatar endpoints; remove one in "
    "Speech Studio before deploying another."
)


def iso(ts: float) -> str:
    """Format a Unix time as the service does: ISO 8601 UTC with ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _pydantic_message(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return f"{loc}: {first['msg']}" if loc else str(first["msg"]), loc


def _hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class EmulatedResource:
    """One emulated Speech resource: its state, knobs and the rules of the service."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        """Create the resource over an opened store.

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
        allowed = {
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
        unknown = set(changes) - allowed
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
                raise bad_request(_pydantic_message(exc)[0]) from None
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

    def authorized(self, headers: dict[str, str]) -> bool:
        """Check ``Ocp-Apim-Subscription-Key`` or ``Authorization: Bearer``.

        With no key configured any non-empty value is accepted. A bearer token is accepted when
        it equals the key (the emulator's stand-in for an Entra token).
        """
        key = headers.get("ocp-apim-subscription-key")
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if self.key is None:
            return bool(key) or bool(token)
        given = key if key is not None else token
        return given is not None and hmac.compare_digest(given.encode(), self.key.encode())

    # ------------------------------------------------------------ batch syntheses

    def create_job(
        self, job_id: str, raw: bytes, operation_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate and create a batch synthesis job (``PUT /avatar/batchsyntheses/{id}``).

        Args:
            job_id: The id from the path.
            raw: The request body.
            operation_id: The ``Operation-Id`` request header.
            api_version: The request's api-version.

        Returns:
            The 201 body and the ``Operation-Id``/``Operation-Location`` headers.

        Raises:
            ApiError: 400 for everything the service rejects.
        """
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise bad_request(
                f"The request body is {len(raw)} bytes; the maximum allowed payload is 500KB."
            )
        try:
            check_resource_id(job_id, "The batch synthesis id")
        except RequestValidationError as exc:
            raise bad_request(exc.message, "id") from None
        if operation_id is not None:
            try:
                check_resource_id(operation_id, "The Operation-Id header")
            except RequestValidationError as exc:
                raise bad_request(exc.message, "Operation-Id") from None
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        if not body.get("inputs"):
            raise bad_request("The inputs is required.", "inputs")
        try:
            request = BatchSynthesis.model_validate(body).to_request()
        except ValidationError as exc:
            message, loc = _pydantic_message(exc)
            raise bad_request(message, loc or None) from None
        except RequestValidationError as exc:
            raise bad_request(exc.message) from None
        self._check_custom_voices(request.get("customVoices") or {})
        self._check_custom_avatar(request["avatarConfig"])
        now = self.now()
        op_id = operation_id or str(uuid.uuid4())
        digest = _hash({"id": job_id, "body": body})
        existing_op = self.store.get_operation("avatar", op_id)
        if existing_op is not None and existing_op.request_hash != digest:
            raise bad_request(
                f"The Operation-Id '{op_id}' matches an existing operation and the request is "
                "not identical to the prior request.",
                "Operation-Id",
            )
        job = Job(
            id=job_id,
            internal_id=str(uuid.uuid4()),
            seq=0,
            status="NotStarted",
            created=now,
            last_action=now,
            started=None,
            finish_at=None,
            request=request,
            result={},
            op_id=op_id,
        )
        op = Operation(op_id, "avatar", "job", job_id, "NotStarted", now, digest)
        if not self.store.insert_job(job, op):
            raise bad_request(
                f"A batch synthesis with id '{job_id}' already exists in this resource; use a "
                "new id or GET the existing one.",
                "id",
            )
        self.wakeup.set()
        headers = {
            "Operation-Id": op_id,
            "Operation-Location": f"{self.base_url}/avatar/operations/{quote(op_id)}?"
            + urlencode({"api-version": api_version}),
        }
        return self.job_view(job, mint_urls=False), headers

    def _check_custom_voices(self, voices: dict[str, str]) -> None:
        for name, deployment in voices.items():
            res = self.store.get_cv("endpoints", deployment.lower())
            problem = None
            if res is None:
                problem = "is not a custom voice endpoint of this Speech resource"
            elif res.body.get("status") != "Succeeded":
                problem = f"is not successfully deployed (status {res.body.get('status')})"
            else:
                model = self.store.get_cv("models", str(res.body.get("modelId")))
                voice_name = str((model.body if model else {}).get("voiceName", ""))
                if voice_name.lower() != name.lower():
                    problem = f"serves the voice '{voice_name}', not '{name}'"
            if problem:
                raise bad_request(
                    f"The custom voice deployment ID '{deployment}' {problem}. Make sure the "
                    f'customVoices mapping {{"{name}": "{deployment}"}} is correct and the '
                    "endpoint is deployed in this Speech resource.",
                    "customVoices",
                )

    def _check_custom_avatar(self, avatar: dict[str, Any]) -> None:
        if not avatar.get("customized"):
            return
        name = str(avatar.get("talkingAvatarCharacter", ""))
        model = self.store.get_avatar(name)
        if model is None or model.deploy_status != "Succeeded":
            state = "does not exist" if model is None else "is not deployed"
            if model is not None and model.deploy_status:
                state = f"is not deployed yet (deployment status {model.deploy_status})"
            raise bad_request(
                f"The custom avatar '{name}' {state} in this Speech resource. Deploy the custom "
                "avatar model in Speech Studio and wait for the Succeeded status.",
                "avatarConfig.talkingAvatarCharacter",
            )

    def get_job(self, job_id: str) -> dict[str, Any]:
        """Return a job's GET body (with freshly minted result URLs).

        Raises:
            ApiError: 404 when there is no such job.
        """
        job = self.store.get_job(job_id)
        if job is None:
            raise not_found(
                f"The specified entity can't be found. Make sure the synthesis ID '{job_id}' "
                "is correct."
            )
        return self.job_view(job)

    def list_jobs(self, skip: int, top: int, api_version: str) -> dict[str, Any]:
        """Return one page of jobs, newest first, with ``nextLink`` unless it is the last."""
        jobs, total = self.store.list_jobs(skip, top)
        page: dict[str, Any] = {"value": [self.job_view(j) for j in jobs]}
        if skip + top < total:
            query = urlencode({"maxpagesize": top, "skip": skip + top, "api-version": api_version})
            page["nextLink"] = f"{self.base_url}/avatar/batchsyntheses/?{query}"
        return page

    def delete_job(self, job_id: str) -> None:
        """Delete a job and its results.

        Raises:
            ApiError: 404 when there is no such job.
        """
        job = self.store.delete_job(job_id)
        if job is None:
            raise not_found(
                f"The specified entity can't be found. Make sure the synthesis ID '{job_id}' "
                "is correct."
            )
        self.remove_results(job)

    def remove_results(self, job: Job) -> None:
        """Delete a job's result folder."""
        import shutil

        shutil.rmtree(self.job_dir(job), ignore_errors=True)

    def job_dir(self, job: Job) -> Path:
        """The folder of a job's results on disk."""
        return self.results_dir / job.internal_id / job.id

    def job_view(self, job: Job, *, mint_urls: bool = True) -> dict[str, Any]:
        """Return a job in the service's response shape."""
        req = job.request
        view: dict[str, Any] = {"id": job.id}
        if req.get("description") is not None:
            view["description"] = req["description"]
        view["status"] = job.status
        view["createdDateTime"] = iso(job.created)
        view["lastActionDateTime"] = iso(job.last_action)
        kind = str(req.get("inputKind", "PlainText"))
        view["inputKind"] = "SSML" if kind.lower() == "ssml" else "PlainText"
        view["customVoices"] = dict(req.get("customVoices") or {})
        req_props = req.get("properties") or {}
        props: dict[str, Any] = {
            "timeToLiveInHours": req_props.get("timeToLiveInHours", DEFAULT_TTL_HOURS)
        }
        if req_props.get("destinationPath"):
            props["destinationPath"] = req_props["destinationPath"]
        result = job.result
        if job.status in ("Succeeded", "Failed"):
            inputs = result.get("inputs", [])
            ok = [i for i in inputs if i.get("status") == "Succeeded"]
            if ok:
                props["sizeInBytes"] = sum(int(i["size"]) for i in ok)
                props["durationInMilliseconds"] = sum(int(i["duration_ms"]) for i in ok)
            props["succeededCount"] = len(ok)
            props["failedCount"] = len(inputs) - len(ok) if inputs else 0
            if job.status == "Failed" and not inputs:
                props["failedCount"] = len(req.get("inputs") or [])
            if ok:
                chars = sum(int(i["characters"]) for i in ok)
                billing: dict[str, Any] = {}
                if req.get("customVoices"):
                    billing["customNeuralCharacters"] = chars
                else:
                    billing["neuralCharacters"] = chars
                billing["talkingAvatarDurationSeconds"] = props["durationInMilliseconds"] // 1000
                props["billingDetails"] = billing
            if job.status == "Failed":
                props["error"] = result.get("error") or {
                    "code": "InternalServerError",
                    "message": "The synthesis failed.",
                }
        view["properties"] = props
        if req.get("synthesisConfig"):
            view["synthesisConfig"] = req["synthesisConfig"]
        view["avatarConfig"] = self._avatar_view(req["avatarConfig"])
        if job.status == "Succeeded" and result.get("files"):
            view["outputs"] = self._outputs(job, mint_urls)
        view["internalId"] = job.internal_id
        return view

    @staticmethod
    def _avatar_view(cfg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"talkingAvatarCharacter": cfg["talkingAvatarCharacter"]}
        if cfg.get("talkingAvatarStyle") is not None:
            out["talkingAvatarStyle"] = cfg["talkingAvatarStyle"]
        out["videoFormat"] = str(cfg.get("videoFormat") or "mp4").capitalize()
        out["videoCodec"] = str(cfg.get("videoCodec") or "hevc").lower()
        out["subtitleType"] = str(cfg.get("subtitleType") or "soft_embedded").lower()
        for name in ("backgroundColor", "backgroundImage", "videoCrop"):
            if cfg.get(name) is not None:
                out[name] = cfg[name]
        out["bitrateKbps"] = int(cfg.get("bitrateKbps") or 2000)
        out["customized"] = bool(cfg.get("customized", False))
        for name, value in cfg.items():
            if name not in out and value is not None:
                out[name] = value
        return out

    def _outputs(self, job: Job, mint: bool) -> dict[str, str]:
        files: list[str] = job.result["files"]
        video = files[0]
        dest = (job.request.get("properties") or {}).get("destinationContainerUrl")
        if dest:
            prefix = self.destination_prefix(job)
            return {"result": f"{prefix}{video}", "summary": f"{prefix}summary.json"}
        return {
            "result": self.result_url(job, video, mint),
            "summary": self.result_url(job, "summary.json", mint),
        }

    @staticmethod
    def destination_prefix(job: Job) -> str:
        """``{destinationPath}/{jobId}/`` (or ``{jobId}/``) inside the destination container."""
        path = str((job.request.get("properties") or {}).get("destinationPath") or "").strip("/")
        return f"{path}/{job.id}/" if path else f"{job.id}/"

    # ------------------------------------------------------------ result URLs

    def result_path(self, job_id: str, name: str) -> str:
        """The URL path of one result file."""
        return f"/results/{RESULT_CONTAINER}/{self.resource_hex}/{quote(job_id)}/{quote(name)}"

    def _signature(self, path: str, expiry: int) -> str:
        mac = hmac.new(self.secret, f"{path}\n{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def result_url(self, job: Job, name: str, mint: bool = True) -> str:
        """Mint a signed, expiring URL for one result file (maybe expired: a fault)."""
        path = self.result_path(job.id, name)
        expiry = int(self.now() + self.config.result_url_ttl_s)
        if mint and self.faults.url_expired():
            expiry = int(self.now()) - 1
            self.store.bump("fault.expired_url")
        query = urlencode(
            {
                "sv": "2023-11-03",
                "sr": "b",
                "sp": "r",
                "se": str(expiry),
                "sig": self._signature(path, expiry),
            }
        )
        return f"{self.base_url}{path}?{query}"

    def check_signature(self, path: str, se: str | None, sig: str | None) -> str | None:
        """Return ``None`` if the URL is valid now, else why not."""
        if not se or not sig:
            return "Signature fields not well formed."
        try:
            expiry = int(se)
        except ValueError:
            return "Signature fields not well formed."
        if not hmac.compare_digest(self._signature(path, expiry), sig):
            return "Signature did not match."
        if expiry <= self.now():
            return f"Signed expiry time [{iso(expiry)}] must be after the current time."
        return None

    # ------------------------------------------------------------ operations

    def get_operation(self, api: str, op_id: str) -> dict[str, Any]:
        """Return ``{id, status}`` of an operation.

        Raises:
            ApiError: 404 when there is no such operation.
        """
        op = self.store.get_operation(api, op_id)
        if op is None:
            raise not_found(f"The operation '{op_id}' can't be found.")
        status = op.status
        if op.kind == "job":
            job = self.store.get_job(op.target)
            if job is not None and job.op_id == op.id:
                status = job.status
        else:
            kind = "models" if op.kind == "model" else "endpoints"
            res = self.store.get_cv(kind, op.target)
            if res is not None:
                status = self._cv_op_status(op.kind, str(res.body.get("status")), op.status)
        if status != op.status:
            self.store.set_operation_status(op.id, status)
        return {"id": op.id, "status": status}

    @staticmethod
    def _cv_op_status(kind: str, res_status: str, last: str) -> str:
        if last in ("Succeeded", "Failed"):
            return last
        if kind == "suspend":
            return {"Disabling": "Running", "Disabled": "Succeeded"}.get(res_status, "Failed")
        if kind == "resume":
            return {"Running": "Running", "Succeeded": "Succeeded", "NotStarted": "NotStarted"}.get(
                res_status, "Failed"
            )
        return (
            res_status if res_status in ("NotStarted", "Running", "Succeeded", "Failed") else last
        )

    # ------------------------------------------------------------ custom voice

    def _new_op(self, kind: str, target: str, op_id: str | None, digest: str) -> Operation:
        if op_id is not None:
            try:
                check_resource_id(op_id, "The Operation-Id header")
            except RequestValidationError as exc:
                raise bad_request(exc.message, "Operation-Id") from None
            prior = self.store.get_operation("customvoice", op_id)
            if prior is not None and prior.request_hash != digest:
                raise bad_request(
                    f"The Operation-Id '{op_id}' matches an existing operation and the request "
                    "is not identical to the prior request.",
                    "Operation-Id",
                )
        return Operation(
            op_id or str(uuid.uuid4()),
            "customvoice",
            kind,
            target,
            "NotStarted",
            self.now(),
            digest,
        )

    def op_headers(self, op: Operation, api_version: str) -> dict[str, str]:
        """``Operation-Id`` and ``Operation-Location`` for a CNV operation."""
        return {
            "Operation-Id": op.id,
            "Operation-Location": f"{self.base_url}/customvoice/operations/{quote(op.id)}?"
            + urlencode({"api-version": api_version}),
        }

    @staticmethod
    def _parse_body(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        return body

    def _phases(self, seconds: float, *steps: str) -> list[list[Any]]:
        """Plan status steps over ``seconds``: the first at a quarter, the last at the end.

        Each phase is ``[start, unscaled offset, status]``; it is due at
        ``start + offset * time_scale`` with the scale in force when it is checked, so a change of
        ``time_scale`` applies to transitions already planned.
        """
        now = self.now()
        if len(steps) == 1:
            return [[now, seconds, steps[0]]]
        return [[now, seconds * (0.25 if i == 0 else 1.0), s] for i, s in enumerate(steps)]

    def _due(self, phase: list[Any], now: float) -> bool:
        return float(phase[0]) + self.config.scaled(float(phase[1])) <= now

    def create_project(self, pid: str, raw: bytes, api_version: str) -> dict[str, Any]:
        """``PUT /customvoice/projects/{id}``.

        Raises:
            ApiError: 400 for an invalid or duplicate project.
        """
        self._check_id(pid)
        body = self._parse_body(raw)
        try:
            Project.model_validate(body)
        except ValidationError as exc:
            message, loc = _pydantic_message(exc)
            raise bad_request(message, loc or None) from None
        obj = {
            k: v for k, v in body.items() if k in ("displayName", "description", "kind", "locale")
        }
        if api_version == "2024-02-01-preview":
            obj.pop("locale", None)
        out = {"id": pid, **obj, "createdDateTime": iso(self.now())}
        if not self.store.insert_cv(CvResource("projects", pid, 0, out)):
            raise bad_request(f"A project with id '{pid}' already exists.", "id")
        return out

    def create_model(
        self, mid: str, raw: bytes, op_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``PUT /customvoice/models/{id}``: training is modelled (NotStarted, Running, Succeeded).

        Consents and training sets are not emulated: their ids are taken as given.

        Raises:
            ApiError: 400 for an invalid model, a duplicate id or an unknown project.
        """
        self._check_id(mid)
        body = self._parse_body(raw)
        try:
            Model.model_validate(body)
        except ValidationError as exc:
            message, loc = _pydantic_message(exc)
            raise bad_request(message, loc or None) from None
        for name in ("recipe", "projectId", "consentId", "trainingSetId"):
            if not body.get(name):
                raise bad_request(f"{name}: Field required", name)
        project = self.store.get_cv("projects", str(body["projectId"]))
        if project is None:
            raise bad_request(f"The project '{body['projectId']}' can't be found.", "projectId")
        now = self.now()
        recipe = dict(body["recipe"])
        recipe.setdefault("version", "V7.2023.03")
        out: dict[str, Any] = {
            "id": mid,
            "voiceName": body.get("voiceName") or f"{mid}Neural",
        }
        if body.get("description") is not None:
            out["description"] = body["description"]
        out |= {
            "recipe": {k: recipe[k] for k in ("kind", "version") if k in recipe},
            "projectId": body["projectId"],
            "consentId": body["consentId"],
            "trainingSetId": body["trainingSetId"],
            "locale": body.get("locale") or project.body.get("locale") or "en-US",
            "engineVersion": "2023.07.04.0",
        }
        if body.get("properties"):
            out["properties"] = body["properties"]
        out |= {"status": "NotStarted", "createdDateTime": iso(now), "lastActionDateTime": iso(now)}
        return self._create_modelled(
            "models", mid, body, out, op_id, api_version, self.config.cnv_model_training_s
        )

    def create_endpoint(
        self, eid: str, raw: bytes, op_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``PUT /customvoice/endpoints/{uuid}``: deployment is modelled.

        Raises:
            ApiError: 400 for a bad id or body, a duplicate, an unknown or untrained model, or
                the per-resource endpoint cap.
        """
        if not UUID_RE.match(eid):
            raise bad_request(f"The endpoint id '{eid}' is not a valid UUID.", "id")
        eid = eid.lower()
        body = self._parse_body(raw)
        try:
            Endpoint.model_validate(body)
        except ValidationError as exc:
            message, loc = _pydantic_message(exc)
            raise bad_request(message, loc or None) from None
        model = self.store.get_cv("models", str(body["modelId"]))
        if model is None or model.body.get("projectId") != body["projectId"]:
            raise bad_request(
                f"The model '{body['modelId']}' can't be found in project '{body['projectId']}'.",
                "modelId",
            )
        if model.body.get("status") != "Succeeded":
            raise bad_request(
                f"The model '{body['modelId']}' is not trained successfully "
                f"(status {model.body.get('status')}).",
                "modelId",
            )
        if len(self.store.list_cv("endpoints")) >= self.config.max_cnv_endpoints:
            raise bad_request(
                f"The Speech resource already has {self.config.max_cnv_endpoints} custom voice "
                "endpoints, the maximum; delete one first."
            )
        now = self.now()
        kind = (body.get("properties") or {}).get("kind") or "HighPerformance"
        out: dict[str, Any] = {"id": eid}
        for name in ("displayName", "description"):
            if body.get(name) is not None:
                out[name] = body[name]
        out |= {
            "projectId": body["projectId"],
            "modelId": body["modelId"],
            "properties": {"kind": kind},
            "status": "NotStarted",
            "createdDateTime": iso(now),
            "lastActionDateTime": iso(now),
        }
        return self._create_modelled(
            "endpoints", eid, body, out, op_id, api_version, self.config.cnv_endpoint_deploy_s
        )

    def _create_modelled(
        self,
        kind: str,
        rid: str,
        body: dict[str, Any],
        out: dict[str, Any],
        op_id: str | None,
        api_version: str,
        seconds: float,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Store a new model or endpoint whose training/deployment runs for ``seconds``."""
        op = self._new_op(kind[:-1], rid, op_id, _hash({"id": rid, "body": body}))
        res = CvResource(kind, rid, 0, out, self._phases(seconds, "Running", "Succeeded"))
        if not self.store.insert_cv(res, op):
            raise bad_request(f"The {kind[:-1]} id '{rid}' already exists.", "id")
        self.wakeup.set()
        return out, self.op_headers(op, api_version)

    def endpoint_action(
        self, eid: str, action: str, op_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``POST /customvoice/endpoints/{id}:suspend`` or ``:resume``.

        Raises:
            ApiError: 404 for an unknown endpoint, 400 when it is not in a state that allows it.
        """
        res = self.get_cv("endpoints", eid)
        status = res.body.get("status")
        if action == "suspend" and status != "Succeeded":
            raise bad_request(
                f"The endpoint '{eid}' can only be suspended when its status is Succeeded "
                f"(it is {status})."
            )
        if action == "resume" and status != "Disabled":
            raise bad_request(
                f"The endpoint '{eid}' can only be resumed when its status is Disabled "
                f"(it is {status})."
            )
        op = self._new_op(
            action, res.id, op_id, _hash({"id": eid, "action": action, "t": self.now()})
        )
        op.status = "Running"
        now_status, final = (
            ("Disabling", "Disabled") if action == "suspend" else ("Running", "Succeeded")
        )
        res.body["status"] = now_status
        res.body["lastActionDateTime"] = iso(self.now())
        res.phases = self._phases(self.config.cnv_endpoint_deploy_s, final)
        self.store.update_cv(res, op)
        self.wakeup.set()
        return res.body, self.op_headers(op, api_version)

    def get_cv(self, kind: str, res_id: str) -> CvResource:
        """Return one CNV resource.

        Raises:
            ApiError: 404 when it does not exist.
        """
        key = res_id.lower() if kind == "endpoints" else res_id
        res = self.store.get_cv(kind, key)
        if res is None:
            what = kind[:-1]
            raise not_found(f"The {what} '{res_id}' can't be found.")
        return res

    def delete_cv(self, kind: str, res_id: str, force: bool = False) -> None:
        """Delete a CNV project, model or endpoint.

        Raises:
            ApiError: 404 when it does not exist; 400 when something still depends on it.
        """
        res = self.get_cv(kind, res_id)
        if kind == "projects":
            models = [m for m in self.store.list_cv("models") if m.body.get("projectId") == res.id]
            eps = [e for e in self.store.list_cv("endpoints") if e.body.get("projectId") == res.id]
            if (models or eps) and not force:
                raise bad_request(
                    f"The project '{res.id}' still has models or endpoints; set forceDelete=true "
                    "to delete them with it."
                )
            for item in eps + models:
                self.store.delete_cv(item.kind, item.id)
        if kind == "models":
            users = [
                e.id for e in self.store.list_cv("endpoints") if e.body.get("modelId") == res.id
            ]
            if users:
                raise bad_request(
                    f"The model '{res.id}' is used by endpoint(s) {', '.join(users)}; delete them "
                    "first."
                )
        self.store.delete_cv(kind, res.id)

    def list_cv(
        self, kind: str, skip: int, top: int, flt: str | None, api_version: str
    ) -> dict[str, Any]:
        """Return one page of CNV resources, filtered (``filter``), in creation order.

        Raises:
            ApiError: 400 for a filter the service does not understand.
        """
        items = [r.body for r in self.store.list_cv(kind)]
        if flt:
            preds = _parse_filter(flt)
            items = [i for i in items if all(p(i) for p in preds)]
        page: dict[str, Any] = {"value": items[skip : skip + top]}
        if skip + top < len(items):
            params: dict[str, Any] = {"skip": skip + top, "maxpagesize": top}
            if flt:
                params["filter"] = flt
            params["api-version"] = api_version
            page["nextLink"] = f"{self.base_url}/customvoice/{kind}?{urlencode(params)}"
        return page

    @staticmethod
    def _check_id(res_id: str) -> None:
        try:
            check_resource_id(res_id)
        except RequestValidationError as exc:
            raise bad_request(exc.message, "id") from None

    # ------------------------------------------------------------ custom avatars (admin)

    def avatar_view(self, model: AvatarModel) -> dict[str, Any]:
        """Return a custom avatar model with its deployment."""
        deployment = None
        if model.deploy_status is not None:
            deployment = {
                "status": model.deploy_status,
                "requestedDateTime": iso(model.deploy_requested or model.created),
            }
        return {"name": model.name, "createdDateTime": iso(model.created), "deployment": deployment}

    def create_avatar(self, name: str, deployed: bool = False) -> tuple[dict[str, Any], bool]:
        """Create a custom avatar model (idempotent); optionally mark it deployed at once.

        Returns:
            Its view and whether it was created now.

        Raises:
            ApiError: 400 for an invalid name or (``deployed``) the cap.
        """
        if not AVATAR_NAME.match(name):
            raise bad_request(
                f"The avatar model name '{name}' is invalid: use letters, numbers, hyphens and "
                "underscores.",
                "name",
            )
        existing = self.store.get_avatar(name)
        created = existing is None
        if existing is None:
            existing = AvatarModel(name, self.now(), None, None, [])
            self.store.put_avatar(existing)
        if deployed and existing.deploy_status != "Succeeded":
            self.deploy_avatar(name)
            model = self.store.get_avatar(name)
            assert model is not None
            model.deploy_status, model.phases = "Succeeded", []
            self.store.put_avatar(model)
            existing = model
        return self.avatar_view(existing), created

    def deploy_avatar(self, name: str) -> dict[str, Any]:
        """Start deploying a custom avatar (NotStarted -> Running -> Succeeded).

        Raises:
            ApiError: 404 for an unknown model; 400 at the cap.
        """
        final = "Failed" if self.faults.deployment_fails() else "Succeeded"
        phases = self._phases(self.config.avatar_deploy_s, "Running", final)
        outcome = self.store.deploy_avatar(
            name, self.config.max_avatar_deployments, phases, self.now()
        )
        if outcome == "missing":
            raise not_found(f"The custom avatar model '{name}' can't be found.")
        if outcome == "cap":
            raise bad_request(AVATAR_CAP_MESSAGE.format(cap=self.config.max_avatar_deployments))
        self.wakeup.set()
        model = self.store.get_avatar(name)
        assert model is not None
        return self.avatar_view(model)

    def remove_deployment(self, name: str) -> None:
        """Remove a custom avatar's deployment (the model stays).

        Raises:
            ApiError: 404 when the model or its deployment does not exist.
        """
        model = self.store.get_avatar(name)
        if model is None or model.deploy_status is None:
            raise not_found(f"The custom avatar '{name}' has no deployment.")
        model.deploy_status, model.deploy_requested, model.phases = None, None, []
        self.store.put_avatar(model)

    # ------------------------------------------------------------ seeding

    def seed(self, data: dict[str, Any]) -> dict[str, int]:
        """Load avatars, CNV projects/models/endpoints and the key from a seed document.

        Seeded models and endpoints are ``Succeeded`` unless they say otherwise.

        Args:
            data: ``{key?, avatars: [{name, deployed}], projects: [...], models: [...],
                endpoints: [...]}`` (CNV items in API shape).

        Returns:
            How many items of each kind were added.

        Raises:
            ApiError: 400 for an invalid item.
        """
        if not isinstance(data, dict):
            raise bad_request("The seed must be a mapping.")
        unknown = set(data) - {"key", "avatars", "projects", "models", "endpoints"}
        if unknown:
            raise bad_request(f"seed: unknown section(s) {', '.join(sorted(unknown))}")
        counts = {"avatars": 0, "projects": 0, "models": 0, "endpoints": 0}
        if data.get("key") and self.config.key is None:
            self.key = str(data["key"])
        now = iso(self.now())
        for i, item in enumerate(data.get("avatars") or []):
            if not isinstance(item, dict) or not item.get("name"):
                raise bad_request(f"seed: avatars[{i}] needs a name")
            self.create_avatar(str(item["name"]), bool(item.get("deployed", False)))
            counts["avatars"] += 1
        for kind, model_cls in (("projects", Project), ("models", Model), ("endpoints", Endpoint)):
            for i, item in enumerate(data.get(kind) or []):
                if not isinstance(item, dict) or not item.get("id"):
                    raise bad_request(f"seed: {kind}[{i}] needs an id")
                try:
                    model_cls.model_validate(item)
                except ValidationError as exc:
                    raise bad_request(f"seed: {kind}[{i}]: {_pydantic_message(exc)[0]}") from None
                if kind == "models" and not item.get("projectId"):
                    raise bad_request(f"seed: models[{i}]: projectId: Field required")
                if kind == "endpoints" and not UUID_RE.match(str(item["id"])):
                    raise bad_request(f"seed: endpoints[{i}]: id must be a UUID")
                body = dict(item)
                body["id"] = str(body["id"]).lower() if kind == "endpoints" else str(body["id"])
                body.setdefault("createdDateTime", now)
                if kind != "projects":
                    body.setdefault("status", "Succeeded")
                    body.setdefault("lastActionDateTime", now)
                if kind == "models":
                    body.setdefault("voiceName", f"{body['id']}Neural")
                    body.setdefault("recipe", {"kind": "Default", "version": "V7.2023.03"})
                    body.setdefault("consentId", body["id"])
                    body.setdefault("trainingSetId", body["id"])
                    body.setdefault("engineVersion", "2023.07.04.0")
                    body.setdefault("locale", "en-US")
                if kind == "endpoints":
                    body.setdefault("properties", {"kind": "HighPerformance"})
                res = CvResource(kind, body["id"], 0, body)
                if not self.store.insert_cv(res):
                    existing = self.store.get_cv(kind, body["id"])
                    assert existing is not None
                    existing.body, existing.phases = body, []
                    self.store.update_cv(existing)
                counts[kind] += 1
        return counts

    # ------------------------------------------------------------ state transitions

    def advance_phases(self) -> None:
        """Apply due status transitions of CNV models/endpoints and avatar deployments."""
        now = self.now()
        for kind in ("models", "endpoints"):
            for res in self.store.list_cv(kind):
                if not res.phases or not self._due(res.phases[0], now):
                    continue
                while res.phases and self._due(res.phases[0], now):
                    start, offset, status = res.phases.pop(0)
                    res.body["status"] = status
                    res.body["lastActionDateTime"] = iso(
                        min(now, float(start) + self.config.scaled(float(offset)))
                    )
                self.store.update_cv(res)
                for op in self.store.operations_for("customvoice", res.id):
                    self.get_operation("customvoice", op.id)
        for model in self.store.list_avatars():
            if model.phases and self._due(model.phases[0], now):
                while model.phases and self._due(model.phases[0], now):
                    model.deploy_status = model.phases.pop(0)[2]
                self.store.put_avatar(model)


_FILTER_CLAUSE = re.compile(
    r"^\s*(?P<field>projectId|createdDateTime|locale|kind)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
    r"(?P<value>'[^']*'|\S+)\s*$"
)


def _parse_filter(flt: str) -> list[Any]:
    preds = []
    for clause in re.split(r"\s+and\s+", flt.strip()):
        m = _FILTER_CLAUSE.match(clause)
        if not m:
            raise ApiError(400, "BadArgument", f"The filter '{flt}' is invalid.", target="filter")
        fld, op, value = m["field"], m["op"], m["value"].strip("'")
        if fld != "createdDateTime" and op not in ("eq", "ne"):
            raise ApiError(
                400,
                "BadArgument",
                f"The operator '{op}' is not supported for {fld}.",
                target="filter",
            )
        preds.append(_predicate(fld, op, value, flt))
    return preds


def _predicate(fld: str, op: str, value: str, flt: str) -> Any:
    if fld == "createdDateTime":
        try:
            ref = _parse_iso(value)
        except ValueError:
            raise ApiError(
                400, "BadArgument", f"The filter '{flt}' has an invalid date.", target="filter"
            ) from None
        ops: dict[str, Callable[[float], bool]] = {
            "eq": lambda a: a == ref,
            "ne": lambda a: a != ref,
            "gt": lambda a: a > ref,
            "ge": lambda a: a >= ref,
            "lt": lambda a: a < ref,
            "le": lambda a: a <= ref,
        }
        test = ops[op]
        return lambda item: test(_parse_iso(str(item.get("createdDateTime"))))

    def get(item: dict[str, Any]) -> str:
        if fld == "kind" and "kind" not in item:
            return str((item.get("properties") or {}).get("kind", ""))
        return str(item.get(fld, ""))

    if op == "eq":
        return lambda item: get(item).lower() == value.lower()
    return lambda item: get(item).lower() != value.lower()
