"""Batch avatar synthesis jobs: create (validated), read, list, delete, and their response shape.

A create (``PUT /avatar/batchsyntheses/{id}``) is validated by the emulator's own models
(:mod:`avatarpipe.emulator.models`), then by what only the resource knows: each ``customVoices``
entry must be a ``Succeeded`` custom voice endpoint of this resource serving that voice, and a
custom avatar (``customized: true``) must be deployed. A PUT identical to the one that created the
job (same id, same body: a client re-sending after a lost answer) is answered 201 with the job as
it is now; a different body for an existing id is a 400.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from avatarpipe.emulator.apierror import ApiError, bad_request, not_found
from avatarpipe.emulator.core import ResourceCore, body_hash, iso, parse_body
from avatarpipe.emulator.models import MAX_PAYLOAD_BYTES, check_resource_id, job_request
from avatarpipe.emulator.operations import Operations
from avatarpipe.emulator.sas import ResultUrls
from avatarpipe.emulator.store import Job

__all__ = ["DEFAULT_TTL_HOURS", "Jobs"]

DEFAULT_TTL_HOURS = 744


class Jobs:
    """The batch synthesis jobs of one emulated resource."""

    def __init__(self, core: ResourceCore, operations: Operations, urls: ResultUrls) -> None:
        """Create over the resource's core, its operations and its result URLs."""
        self.core = core
        self.operations = operations
        self.urls = urls

    # ------------------------------------------------------------ create

    def create(
        self, job_id: str, raw: bytes, operation_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate and create a job (``PUT /avatar/batchsyntheses/{id}``).

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
        check_resource_id(job_id, "The batch synthesis id", "id")
        if operation_id is not None:
            check_resource_id(operation_id, "The Operation-Id header", "Operation-Id")
        body = parse_body(raw)
        if not body.get("inputs"):
            raise bad_request("The inputs is required.", "inputs")
        request = job_request(body)
        self._check_custom_voices(request.get("customVoices") or {})
        self._check_custom_avatar(request["avatarConfig"])
        digest = body_hash({"id": job_id, "body": body})
        op = self.operations.new("avatar", "job", job_id, operation_id, digest)
        now = self.core.now()
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
            op_id=op.id,
        )
        if not self.core.store.insert_job(job, op):
            return self._repeated(job_id, digest, api_version)
        self.core.wakeup.set()
        return self.view(job, mint_urls=False), self.operations.headers(op, api_version)

    def _repeated(
        self, job_id: str, digest: str, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Answer a PUT for an existing id: the job when the request is identical, else 400."""
        store = self.core.store
        existing = store.get_job(job_id)
        op = store.get_operation("avatar", existing.op_id) if existing else None
        if existing is None or op is None or op.request_hash != digest:
            raise bad_request(
                f"A batch synthesis with id '{job_id}' already exists in this resource and the "
                "request is not identical to the one that created it; use a new id or GET the "
                "existing one.",
                "id",
            )
        return self.view(existing), self.operations.headers(op, api_version)

    def _check_custom_voices(self, voices: dict[str, str]) -> None:
        store = self.core.store
        for name, deployment in voices.items():
            res = store.get_cv("endpoints", deployment.lower())
            problem = None
            if res is None:
                problem = "is not a custom voice endpoint of this Speech resource"
            elif res.body.get("status") != "Succeeded":
                problem = f"is not successfully deployed (status {res.body.get('status')})"
            else:
                model = store.get_cv("models", str(res.body.get("modelId")))
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
        model = self.core.store.get_avatar(name)
        if model is None or model.deploy_status != "Succeeded":
            state = "does not exist" if model is None else "is not deployed"
            if model is not None and model.deploy_status:
                state = f"is not deployed yet (deployment status {model.deploy_status})"
            raise bad_request(
                f"The custom avatar '{name}' {state} in this Speech resource. Deploy the custom "
                "avatar model in Speech Studio and wait for the Succeeded status.",
                "avatarConfig.talkingAvatarCharacter",
            )

    # ------------------------------------------------------------ read, list, delete

    def get(self, job_id: str) -> dict[str, Any]:
        """Return a job's GET body (with freshly minted result URLs).

        Raises:
            ApiError: 404 when there is no such job.
        """
        job = self.core.store.get_job(job_id)
        if job is None:
            raise _job_not_found(job_id)
        return self.view(job)

    def page(self, skip: int, top: int, api_version: str) -> dict[str, Any]:
        """Return one page of jobs, newest first, with ``nextLink`` unless it is the last."""
        jobs, total = self.core.store.list_jobs(skip, top)
        page: dict[str, Any] = {"value": [self.view(j) for j in jobs]}
        if skip + top < total:
            query = urlencode({"maxpagesize": top, "skip": skip + top, "api-version": api_version})
            page["nextLink"] = f"{self.core.base_url}/avatar/batchsyntheses/?{query}"
        return page

    def delete(self, job_id: str) -> None:
        """Delete a job and its results (a job being rendered is dropped when its render ends).

        Raises:
            ApiError: 404 when there is no such job.
        """
        job = self.core.store.delete_job(job_id)
        if job is None:
            raise _job_not_found(job_id)
        self.remove_results(job)

    def remove_results(self, job: Job) -> None:
        """Delete a job's result folder."""
        shutil.rmtree(self.job_dir(job), ignore_errors=True)

    def job_dir(self, job: Job) -> Path:
        """The folder of a job's results on disk."""
        return self.core.results_dir / job.internal_id / job.id

    def exists(self, job: Job) -> bool:
        """Whether this very job (same internal id) is still in the store."""
        current = self.core.store.get_job(job.id)
        return current is not None and current.internal_id == job.internal_id

    @staticmethod
    def destination_prefix(job: Job) -> str:
        """``{destinationPath}/{jobId}/`` (or ``{jobId}/``) inside the destination container."""
        path = str((job.request.get("properties") or {}).get("destinationPath") or "").strip("/")
        return f"{path}/{job.id}/" if path else f"{job.id}/"

    # ------------------------------------------------------------ response shape

    def view(self, job: Job, *, mint_urls: bool = True) -> dict[str, Any]:
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
        view["properties"] = self._properties(job)
        if req.get("synthesisConfig"):
            view["synthesisConfig"] = req["synthesisConfig"]
        view["avatarConfig"] = _avatar_view(req["avatarConfig"])
        if job.status == "Succeeded" and job.result.get("files"):
            view["outputs"] = self._outputs(job, mint_urls)
        view["internalId"] = job.internal_id
        return view

    @staticmethod
    def _properties(job: Job) -> dict[str, Any]:
        req, result = job.request, job.result
        req_props = req.get("properties") or {}
        props: dict[str, Any] = {
            "timeToLiveInHours": req_props.get("timeToLiveInHours", DEFAULT_TTL_HOURS)
        }
        if req_props.get("destinationPath"):
            props["destinationPath"] = req_props["destinationPath"]
        if job.status not in ("Succeeded", "Failed"):
            return props
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
        return props

    def _outputs(self, job: Job, mint: bool) -> dict[str, str]:
        files: list[str] = job.result["files"]
        video = files[0]
        dest = (job.request.get("properties") or {}).get("destinationContainerUrl")
        if dest:
            prefix = self.destination_prefix(job)
            return {"result": f"{prefix}{video}", "summary": f"{prefix}summary.json"}
        return {
            "result": self.urls.mint(job, video, mint),
            "summary": self.urls.mint(job, "summary.json", mint),
        }


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


def _job_not_found(job_id: str) -> ApiError:
    return not_found(
        f"The specified entity can't be found. Make sure the synthesis ID '{job_id}' is correct."
    )
