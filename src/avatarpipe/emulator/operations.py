"""Long-running operations of both APIs (``Operation-Id``, ``Operation-Location``, their status).

A job's operation follows the job; a custom voice operation follows its model or endpoint (a
suspend is ``Running`` while the endpoint is ``Disabling`` ...). Re-using an ``Operation-Id`` for
a request that is not identical to the first is a 400, as the specs say.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, urlencode

from avatarpipe.emulator.apierror import bad_request, not_found
from avatarpipe.emulator.core import ResourceCore
from avatarpipe.emulator.models import check_resource_id
from avatarpipe.emulator.store import Operation

__all__ = ["Operations"]

_BASES = {"avatar": "/avatar", "customvoice": "/customvoice"}


class Operations:
    """The operations of one emulated resource."""

    def __init__(self, core: ResourceCore) -> None:
        """Create over the resource's core."""
        self.core = core

    def new(self, api: str, kind: str, target: str, op_id: str | None, digest: str) -> Operation:
        """A new operation for a request (not stored yet).

        Args:
            api: ``avatar`` or ``customvoice``.
            kind: ``job``, ``model``, ``endpoint``, ``suspend`` or ``resume``.
            target: The id of what it works on.
            op_id: The request's ``Operation-Id`` header, if any.
            digest: The request's digest (:func:`~avatarpipe.emulator.core.body_hash`).

        Raises:
            ApiError: 400 for an invalid ``Operation-Id``, or one already used for a request
                that is not identical.
        """
        if op_id is not None:
            check_resource_id(op_id, "The Operation-Id header", "Operation-Id")
            prior = self.core.store.get_operation(api, op_id)
            if prior is not None and prior.request_hash != digest:
                raise bad_request(
                    f"The Operation-Id '{op_id}' matches an existing operation and the request "
                    "is not identical to the prior request.",
                    "Operation-Id",
                )
        return Operation(
            op_id or str(uuid.uuid4()), api, kind, target, "NotStarted", self.core.now(), digest
        )

    def headers(self, op: Operation, api_version: str) -> dict[str, str]:
        """``Operation-Id`` and ``Operation-Location`` of an operation."""
        return {
            "Operation-Id": op.id,
            "Operation-Location": f"{self.core.base_url}{_BASES[op.api]}/operations/"
            f"{quote(op.id)}?" + urlencode({"api-version": api_version}),
        }

    def get(self, api: str, op_id: str) -> dict[str, Any]:
        """Return ``{id, status}`` of an operation.

        Raises:
            ApiError: 404 when there is no such operation.
        """
        store = self.core.store
        op = store.get_operation(api, op_id)
        if op is None:
            raise not_found(f"The operation '{op_id}' can't be found.")
        status = op.status
        if op.kind == "job":
            job = store.get_job(op.target)
            if job is not None and job.op_id == op.id:
                status = job.status
        else:
            kind = "models" if op.kind == "model" else "endpoints"
            res = store.get_cv(kind, op.target)
            if res is not None:
                status = _cv_status(op.kind, str(res.body.get("status")), op.status)
        if status != op.status:
            store.set_operation_status(op.id, status)
        return {"id": op.id, "status": status}


def _cv_status(kind: str, res_status: str, last: str) -> str:
    if last in ("Succeeded", "Failed"):
        return last
    if kind == "suspend":
        return {"Disabling": "Running", "Disabled": "Succeeded"}.get(res_status, "Failed")
    if kind == "resume":
        return {"Running": "Running", "Succeeded": "Succeeded", "NotStarted": "NotStarted"}.get(
            res_status, "Failed"
        )
    return res_status if res_status in ("NotStarted", "Running", "Succeeded", "Failed") else last
