"""The public API is pinned: what ``avatarpipe`` exports, and that it is typed (as httpx pins its own)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import avatarpipe

EXPECTED = {
    # clients and the one factory
    "open_speech",
    "SpeechClients",
    "BatchAvatarClient",
    "CustomVoiceClient",
    "EmulatorAdminClient",
    "BatchSynthesis",
    "Status",
    # settings
    "Settings",
    "load_settings",
    # scripts -> videos to make
    "Script",
    "load_script",
    "load_bulk",
    "scene_inputs",
    "VideoInput",
    # a synthesis run without Prefect
    "plan_jobs",
    "run_synthesis",
    "SynthesisRequest",
    "SynthesisOutcome",
    "JobRecord",
    "VideoRecord",
    # the exception tree
    "AvatarpipeError",
    "InvalidInputError",
    "ConfigError",
    "ScriptError",
    "RequestValidationError",
    "PresetError",
    "ServiceError",
    "ServiceRequestError",
    "HttpResponseError",
    "TransientServiceError",
    "RateLimitedError",
    "PermanentServiceError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "ResponseError",
    "OutcomeError",
    "SynthesisFailedError",
    "WaitTimeoutError",
    "DeploymentError",
    "CustomVoiceError",
    "DownloadError",
    "ResultExpiredError",
    "MediaError",
    "StorageError",
    "__version__",
}


def test_the_exported_names_are_exactly_the_pinned_ones() -> None:
    assert set(avatarpipe.__all__) == EXPECTED
    assert len(avatarpipe.__all__) == len(EXPECTED), "a name is listed twice in __all__"


def test_every_exported_name_exists_and_belongs_to_avatarpipe() -> None:
    for name in avatarpipe.__all__:
        member = getattr(avatarpipe, name)
        if name == "__version__":
            continue
        assert member.__module__.startswith("avatarpipe."), (name, member.__module__)


def test_every_error_is_part_of_the_one_tree() -> None:
    errors = [
        getattr(avatarpipe, n)
        for n in avatarpipe.__all__
        if n.endswith("Error") and n != "AvatarpipeError"
    ]
    assert errors
    for error in errors:
        assert issubclass(error, avatarpipe.AvatarpipeError), error


def test_the_version_is_the_installed_distribution_version() -> None:
    assert avatarpipe.__version__ == importlib.metadata.version("avatarpipe")


def test_the_package_is_marked_typed() -> None:
    assert (Path(avatarpipe.__file__).parent / "py.typed").is_file()


def test_importing_the_library_does_not_import_prefect_or_the_flows() -> None:
    code = (
        "import sys, avatarpipe; "
        "bad = sorted(m for m in sys.modules if m == 'flows' or m.startswith(('flows.', 'prefect'))); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import avatarpipe pulled in: {out.stdout.strip()}"
