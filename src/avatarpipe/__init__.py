"""avatarpipe: scripts in, finished talking-avatar videos out, with Azure AI Speech batch avatar.

The public API is what this module exports (pinned by ``tests/test_public_api.py``); everything
else may change between releases. A typical library use, without Prefect::

    import avatarpipe

    settings = avatarpipe.load_settings()
    script = avatarpipe.load_script("templates/scripts/product-update.yaml")
    with avatarpipe.open_speech(settings) as clients:
        for job in clients.batch.list_syntheses():
            print(job.id, job.status)

The Prefect flows (``flows/``) and the ``avatarpipe`` command are built on these names.
"""

from importlib.metadata import PackageNotFoundError, version

from avatarpipe.batch.plan import VideoInput, plan_jobs
from avatarpipe.batch.run import (
    JobRecord,
    SynthesisOutcome,
    SynthesisRequest,
    VideoRecord,
    run_synthesis,
)
from avatarpipe.connect import SpeechClients, open_speech
from avatarpipe.errors import (
    AuthenticationError,
    AvatarpipeError,
    ConfigError,
    ConflictError,
    CustomVoiceError,
    DeploymentError,
    DownloadError,
    HttpResponseError,
    InvalidInputError,
    MediaError,
    NotFoundError,
    OutcomeError,
    PermanentServiceError,
    PresetError,
    RateLimitedError,
    RequestValidationError,
    ResponseError,
    ResultExpiredError,
    ScriptError,
    ServiceError,
    ServiceRequestError,
    StorageError,
    SynthesisFailedError,
    TransientServiceError,
    WaitTimeoutError,
)
from avatarpipe.scripts.jobs import scene_inputs
from avatarpipe.scripts.loader import load_bulk, load_script
from avatarpipe.scripts.model import Script
from avatarpipe.settings import Settings, load_settings
from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.custom_voice import CustomVoiceClient
from avatarpipe.speech.emulator_admin import EmulatorAdminClient
from avatarpipe.speech.models import BatchSynthesis, Status

try:
    __version__ = version("avatarpipe")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AuthenticationError",
    "AvatarpipeError",
    "BatchAvatarClient",
    "BatchSynthesis",
    "ConfigError",
    "ConflictError",
    "CustomVoiceClient",
    "CustomVoiceError",
    "DeploymentError",
    "DownloadError",
    "EmulatorAdminClient",
    "HttpResponseError",
    "InvalidInputError",
    "JobRecord",
    "MediaError",
    "NotFoundError",
    "OutcomeError",
    "PermanentServiceError",
    "PresetError",
    "RateLimitedError",
    "RequestValidationError",
    "ResponseError",
    "ResultExpiredError",
    "Script",
    "ScriptError",
    "ServiceError",
    "ServiceRequestError",
    "Settings",
    "SpeechClients",
    "Status",
    "StorageError",
    "SynthesisFailedError",
    "SynthesisOutcome",
    "SynthesisRequest",
    "TransientServiceError",
    "VideoInput",
    "VideoRecord",
    "WaitTimeoutError",
    "__version__",
    "load_bulk",
    "load_script",
    "load_settings",
    "open_speech",
    "plan_jobs",
    "run_synthesis",
    "scene_inputs",
]
