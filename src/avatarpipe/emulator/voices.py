"""Custom neural voice (CNV) projects, models and endpoints, with modelled training and deploys.

Models train (``NotStarted`` -> ``Running`` -> ``Succeeded``) and endpoints deploy over modelled
times; suspend goes ``Disabling`` -> ``Disabled``, resume ``Running`` -> ``Succeeded``. An
endpoint needs a ``Succeeded`` model of its project; a model in use, or a project with models or
endpoints (without ``forceDelete=true``), cannot be deleted. Consents and training sets are not
emulated: a model's ``consentId`` and ``trainingSetId`` are taken as given.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel

from avatarpipe.emulator.apierror import bad_request, not_found
from avatarpipe.emulator.core import ResourceCore, body_hash, iso, parse_body
from avatarpipe.emulator.models import (
    EndpointBody,
    ModelBody,
    ProjectBody,
    check_resource_id,
    validate_body,
)
from avatarpipe.emulator.odata import parse_filter
from avatarpipe.emulator.operations import Operations
from avatarpipe.emulator.store import CvResource

__all__ = ["KINDS", "UUID_RE", "Voices"]

KINDS = ("projects", "models", "endpoints")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_BODIES: dict[str, type[BaseModel]] = {
    "projects": ProjectBody,
    "models": ModelBody,
    "endpoints": EndpointBody,
}


class Voices:
    """The custom voice resources of one emulated resource."""

    def __init__(self, core: ResourceCore, operations: Operations) -> None:
        """Create over the resource's core and its operations."""
        self.core = core
        self.operations = operations

    # ------------------------------------------------------------ create

    def create_project(self, pid: str, raw: bytes, api_version: str) -> dict[str, Any]:
        """``PUT /customvoice/projects/{id}``.

        Raises:
            ApiError: 400 for an invalid or duplicate project.
        """
        check_resource_id(pid, target="id")
        body = parse_body(raw)
        validate_body(ProjectBody, body)
        obj = {
            k: v for k, v in body.items() if k in ("displayName", "description", "kind", "locale")
        }
        if api_version == "2024-02-01-preview":
            obj.pop("locale", None)
        out = {"id": pid, **obj, "createdDateTime": iso(self.core.now())}
        if not self.core.store.insert_cv(CvResource("projects", pid, 0, out)):
            raise bad_request(f"A project with id '{pid}' already exists.", "id")
        return out

    def create_model(
        self, mid: str, raw: bytes, op_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``PUT /customvoice/models/{id}``: training is modelled.

        Raises:
            ApiError: 400 for an invalid model, a duplicate id or an unknown project.
        """
        check_resource_id(mid, target="id")
        body = parse_body(raw)
        validate_body(ModelBody, body)
        for name in ("recipe", "projectId", "consentId", "trainingSetId"):
            if not body.get(name):
                raise bad_request(f"{name}: Field required", name)
        project = self.core.store.get_cv("projects", str(body["projectId"]))
        if project is None:
            raise bad_request(f"The project '{body['projectId']}' can't be found.", "projectId")
        now = self.core.now()
        recipe = dict(body["recipe"])
        recipe.setdefault("version", "V7.2023.03")
        out: dict[str, Any] = {"id": mid, "voiceName": body.get("voiceName") or f"{mid}Neural"}
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
            "models", mid, body, out, op_id, api_version, self.core.config.cnv_model_training_s
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
        body = parse_body(raw)
        validate_body(EndpointBody, body)
        self._check_endpoint_model(body)
        cap = self.core.config.max_cnv_endpoints
        if len(self.core.store.list_cv("endpoints")) >= cap:
            raise bad_request(
                f"The Speech resource already has {cap} custom voice endpoints, the maximum; "
                "delete one first."
            )
        now = self.core.now()
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
            "endpoints", eid, body, out, op_id, api_version, self.core.config.cnv_endpoint_deploy_s
        )

    def _check_endpoint_model(self, body: dict[str, Any]) -> None:
        model = self.core.store.get_cv("models", str(body["modelId"]))
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
        op = self.operations.new(
            "customvoice", kind[:-1], rid, op_id, body_hash({"id": rid, "body": body})
        )
        res = CvResource(kind, rid, 0, out, self.core.phases(seconds, "Running", "Succeeded"))
        if not self.core.store.insert_cv(res, op):
            raise bad_request(f"The {kind[:-1]} id '{rid}' already exists.", "id")
        self.core.wakeup.set()
        return out, self.operations.headers(op, api_version)

    # ------------------------------------------------------------ actions

    def endpoint_action(
        self, eid: str, action: str, op_id: str | None, api_version: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``POST /customvoice/endpoints/{id}:suspend`` or ``:resume``.

        Raises:
            ApiError: 404 for an unknown endpoint, 400 when it is not in a state that allows it.
        """
        core = self.core
        res = self.get("endpoints", eid)
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
        digest = body_hash({"id": eid, "action": action, "t": core.now()})
        op = self.operations.new("customvoice", action, res.id, op_id, digest)
        op.status = "Running"
        now_status, final = (
            ("Disabling", "Disabled") if action == "suspend" else ("Running", "Succeeded")
        )
        res.body["status"] = now_status
        res.body["lastActionDateTime"] = iso(core.now())
        res.phases = core.phases(core.config.cnv_endpoint_deploy_s, final)
        core.store.update_cv(res, op)
        core.wakeup.set()
        return res.body, self.operations.headers(op, api_version)

    # ------------------------------------------------------------ read, list, delete

    def get(self, kind: str, res_id: str) -> CvResource:
        """Return one CNV resource.

        Raises:
            ApiError: 404 when it does not exist.
        """
        key = res_id.lower() if kind == "endpoints" else res_id
        res = self.core.store.get_cv(kind, key)
        if res is None:
            raise not_found(f"The {kind[:-1]} '{res_id}' can't be found.")
        return res

    def delete(self, kind: str, res_id: str, force: bool = False) -> None:
        """Delete a CNV project, model or endpoint.

        Raises:
            ApiError: 404 when it does not exist; 400 when something still depends on it.
        """
        store = self.core.store
        res = self.get(kind, res_id)
        if kind == "projects":
            models = [m for m in store.list_cv("models") if m.body.get("projectId") == res.id]
            eps = [e for e in store.list_cv("endpoints") if e.body.get("projectId") == res.id]
            if (models or eps) and not force:
                raise bad_request(
                    f"The project '{res.id}' still has models or endpoints; set forceDelete=true "
                    "to delete them with it."
                )
            for item in eps + models:
                store.delete_cv(item.kind, item.id)
        if kind == "models":
            users = [e.id for e in store.list_cv("endpoints") if e.body.get("modelId") == res.id]
            if users:
                raise bad_request(
                    f"The model '{res.id}' is used by endpoint(s) {', '.join(users)}; delete them "
                    "first."
                )
        store.delete_cv(kind, res.id)

    def page(
        self, kind: str, skip: int, top: int, flt: str | None, api_version: str
    ) -> dict[str, Any]:
        """Return one page of CNV resources, filtered (``filter``), in creation order.

        Raises:
            ApiError: 400 for a filter the service does not understand.
        """
        items = [r.body for r in self.core.store.list_cv(kind)]
        if flt:
            preds = parse_filter(flt)
            items = [i for i in items if all(p(i) for p in preds)]
        page: dict[str, Any] = {"value": items[skip : skip + top]}
        if skip + top < len(items):
            params: dict[str, Any] = {"skip": skip + top, "maxpagesize": top}
            if flt:
                params["filter"] = flt
            params["api-version"] = api_version
            page["nextLink"] = f"{self.core.base_url}/customvoice/{kind}?{urlencode(params)}"
        return page

    # ------------------------------------------------------------ seeds and transitions

    def seed(self, kind: str, items: list[Any]) -> int:
        """Load seeded items of one kind (API shape; models and endpoints ``Succeeded``).

        Returns:
            How many were loaded.

        Raises:
            ApiError: 400 for an invalid item.
        """
        now = iso(self.core.now())
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("id"):
                raise bad_request(f"seed: {kind}[{i}] needs an id")
            validate_body(_BODIES[kind], item, f"seed: {kind}[{i}]: ")
            if kind == "models" and not item.get("projectId"):
                raise bad_request(f"seed: models[{i}]: projectId: Field required")
            if kind == "endpoints" and not UUID_RE.match(str(item["id"])):
                raise bad_request(f"seed: endpoints[{i}]: id must be a UUID")
            self._put_seeded(kind, _seeded_body(kind, item, now))
        return len(items)

    def _put_seeded(self, kind: str, body: dict[str, Any]) -> None:
        store = self.core.store
        res = CvResource(kind, body["id"], 0, body)
        if not store.insert_cv(res):
            existing = store.get_cv(kind, body["id"])
            if existing is not None:
                existing.body, existing.phases = body, []
                store.update_cv(existing)

    def advance(self, now: float) -> None:
        """Apply due status transitions of models and endpoints (and their operations)."""
        core = self.core
        for kind in ("models", "endpoints"):
            for res in core.store.list_cv(kind):
                if not res.phases or not core.due(res.phases[0], now):
                    continue
                while res.phases and core.due(res.phases[0], now):
                    start, offset, status = res.phases.pop(0)
                    res.body["status"] = status
                    res.body["lastActionDateTime"] = iso(
                        min(now, float(start) + core.config.scaled(float(offset)))
                    )
                core.store.update_cv(res)
                for op in core.store.operations_for("customvoice", res.id):
                    self.operations.get("customvoice", op.id)


def _seeded_body(kind: str, item: dict[str, Any], now: str) -> dict[str, Any]:
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
    return body
