"""Result downloads: ``/results/batchsynthesis-output/{resource hex}/{job id}/{file}?<SAS>``.

Errors are Azure Storage's (XML bodies): 403 ``AuthenticationFailed`` for an expired or wrong
signature, 404 ``BlobNotFound`` for a missing file. ``Range`` requests are served.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from avatarpipe.emulator.core import iso
from avatarpipe.emulator.resource import EmulatedResource
from avatarpipe.emulator.sas import RESULT_CONTAINER

__all__ = ["router"]


def storage_error(status: int, code: str, message: str, detail: str | None = None) -> Response:
    """An Azure Storage error answer (XML)."""
    extra = f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>" if detail else ""
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{iso(time.time())}</Message>{extra}</Error>"
    )
    return Response(
        xml, status_code=status, media_type="application/xml", headers={"x-ms-error-code": code}
    )


def router(resource: EmulatedResource) -> APIRouter:
    """The result download route over ``resource``."""
    api = APIRouter()

    @api.get(f"/results/{RESULT_CONTAINER}/{{res_hex}}/{{job_id}}/{{name}}")
    async def result_file(res_hex: str, job_id: str, name: str, request: Request) -> Response:
        path = resource.urls.path(job_id, name)
        problem = resource.urls.problem(
            path, request.query_params.get("se"), request.query_params.get("sig")
        )
        if res_hex != resource.resource_hex:
            problem = problem or "Signature did not match."
        if problem is not None:
            return storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of "
                "Authorization header is formed correctly including the signature.",
                problem,
            )
        job = resource.store.get_job(job_id)
        file = resource.jobs.job_dir(job) / name if job is not None else None
        if job is None or file is None or "/" in name or name.startswith(".") or not file.is_file():
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        resource.store.bump("downloads")
        resource.store.bump("downloads.summary" if name == "summary.json" else "downloads.video")
        media = "application/json" if name.endswith(".json") else None
        return FileResponse(Path(file), media_type=media)

    return api
