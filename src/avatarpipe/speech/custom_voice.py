"""``CustomVoiceClient``: the custom voice REST API (``/customvoice``) over a :class:`Pipeline`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import TypeVar

from pydantic import BaseModel

from avatarpipe.errors import NotFoundError, RequestValidationError
from avatarpipe.speech.models import Endpoint, Model, Operation, Project, check_resource_id
from avatarpipe.speech.pipeline import Pipeline

__all__ = ["CUSTOM_VOICE_API_VERSION", "CustomVoiceClient"]

log = logging.getLogger("avatarpipe.speech.custom_voice")

CUSTOM_VOICE_API_VERSION = "2026-01-01"
"""The ``api-version`` of the custom voice API used by default."""

_API = "customvoice"

M = TypeVar("M", bound=BaseModel)


class CustomVoiceClient:
    """Client of the custom voice API: projects, models, endpoints (deployments), operations.

    Args:
        pipeline: The shared pipeline (endpoint, auth, retry, budget).
        api_version: ``api-version`` of the custom voice API.

    Attributes:
        pipeline: The pipeline.
        api_version: The API version sent with every request.
    """

    def __init__(self, pipeline: Pipeline, *, api_version: str = CUSTOM_VOICE_API_VERSION) -> None:
        self.pipeline = pipeline
        self.api_version = api_version

    def __repr__(self) -> str:
        return f"CustomVoiceClient({self.pipeline!r}, api_version={self.api_version!r})"

    def get_project(self, project_id: str) -> Project:
        """Get a custom voice project.

        Args:
            project_id: The project id.

        Returns:
            The project.

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such project.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(project_id, "project id")
        return self._get(Project, f"projects/{project_id}")

    def list_projects(self, filter: str | None = None) -> Iterator[Project]:
        """Iterate over projects, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``locale eq 'en-US'``.

        Yields:
            Each project.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._list(Project, "projects", filter)

    def get_model(self, model_id: str) -> Model:
        """Get a custom voice model.

        Args:
            model_id: The model id.

        Returns:
            The model (``voice_name`` is the name used in SSML and ``customVoices``).

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such model.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(model_id, "model id")
        return self._get(Model, f"models/{model_id}")

    def list_models(self, filter: str | None = None) -> Iterator[Model]:
        """Iterate over models, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``projectId eq 'Jessica'``.

        Yields:
            Each model.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._list(Model, "models", filter)

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Get a custom voice endpoint (deployment).

        Args:
            endpoint_id: The endpoint's UUID (the deployment id).

        Returns:
            The endpoint.

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint in this resource.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        return self._get(Endpoint, f"endpoints/{_check_uuid(endpoint_id)}")

    def find_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Get an endpoint, or ``None`` when it does not exist.

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint, or ``None``.

        Raises:
            RequestValidationError: The id is not a UUID.
            ServiceError: Any error other than 404 after retries.
            ResponseError: The answer is malformed.
        """
        try:
            return self.get_endpoint(endpoint_id)
        except NotFoundError:
            return None

    def list_endpoints(self, filter: str | None = None) -> Iterator[Endpoint]:
        """Iterate over endpoints, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``projectId eq 'Jessica'``.

        Yields:
            Each endpoint.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._list(Endpoint, "endpoints", filter)

    def create_endpoint(
        self, endpoint_id: str, endpoint: Endpoint, *, operation_id: str | None = None
    ) -> Endpoint:
        """Deploy a model as an endpoint (``PUT /customvoice/endpoints/{uuid}``, 201).

        Args:
            endpoint_id: The caller-chosen UUID (becomes the deployment id).
            endpoint: ``projectId``, ``modelId`` and optional names and kind.
            operation_id: Optional ``Operation-Id`` header.

        Returns:
            The endpoint as created (status ``NotStarted``).

        Raises:
            RequestValidationError: The id is not a UUID or the operation id is malformed.
            ConflictError: The id is in use.
            PermanentServiceError: Any other 4xx.
            ServiceRequestError: Connect errors or timeouts outlasted the retries.
            TransientServiceError: 429/5xx answers outlasted the retries.
            ResponseError: The answer is malformed.
        """
        eid = _check_uuid(endpoint_id)
        headers: dict[str, str] = {}
        if operation_id is not None:
            headers["Operation-Id"] = check_resource_id(operation_id, "operation id")
        response = self.pipeline.request(
            "PUT",
            f"{_API}/endpoints/{eid}",
            api_version=self.api_version,
            json=endpoint.to_request(),
            headers=headers,
            expected=(200, 201),
        )
        return self.pipeline.parse(Endpoint, response)

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (204); one already gone is fine.

        Args:
            endpoint_id: The endpoint's UUID.

        Raises:
            RequestValidationError: The id is not a UUID.
            ServiceError: Any error other than 404 after retries.
        """
        eid = _check_uuid(endpoint_id)
        try:
            self.pipeline.request(
                "DELETE",
                f"{_API}/endpoints/{eid}",
                api_version=self.api_version,
                expected=(200, 202, 204),
            )
        except NotFoundError:
            log.debug("endpoint %s was already gone", eid)

    def suspend_endpoint(self, endpoint_id: str) -> Endpoint:
        """Suspend an endpoint (``POST /endpoints/{uuid}:suspend``, 202): no hosting charge.

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint (status ``Disabling``).

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        return self._endpoint_action(endpoint_id, "suspend")

    def resume_endpoint(self, endpoint_id: str) -> Endpoint:
        """Resume a suspended endpoint (``POST /endpoints/{uuid}:resume``, 202).

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint (status ``Running``).

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        return self._endpoint_action(endpoint_id, "resume")

    def get_operation(self, operation_id: str) -> Operation:
        """Get an operation (``GET /customvoice/operations/{id}``).

        Args:
            operation_id: The operation id (from ``Operation-Id``).

        Returns:
            The operation.

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such operation.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(operation_id, "operation id")
        return self._get(Operation, f"operations/{operation_id}")

    def _get(self, model: type[M], path: str) -> M:
        response = self.pipeline.request("GET", f"{_API}/{path}", api_version=self.api_version)
        return self.pipeline.parse(model, response)

    def _list(self, model: type[M], path: str, filter: str | None) -> Iterator[M]:
        return self.pipeline.paged(
            model, f"{_API}/{path}", api_version=self.api_version, params={"filter": filter}
        )

    def _endpoint_action(self, endpoint_id: str, action: str) -> Endpoint:
        eid = _check_uuid(endpoint_id)
        response = self.pipeline.request(
            "POST",
            f"{_API}/endpoints/{eid}:{action}",
            api_version=self.api_version,
            content=b"",
            expected=(200, 202),
        )
        return self.pipeline.parse(Endpoint, response)


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise RequestValidationError(
            f"endpoint id {value!r} is invalid: it must be a UUID "
            "(e.g. 9f50c644-2121-40e9-9ea7-544e48bfe3cb)"
        ) from None
