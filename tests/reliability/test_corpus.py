"""The bad-input corpus: every invalid script, CSV, setting and service answer gives one clear
line naming what and where, a non-zero exit, and no half-written output.

Script, bulk and setting cases are data (``tests/corpus/cases.yaml``) run through the real
``avatarpipe`` command. Service cases run the whole flow against the emulator (wrong key, CNV in
another resource, avatar not deployed, the 10-deployment cap) or, for answers the emulator never
gives (malformed JSON, truncated videos), the library against a misbehaving loopback server.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus_tools import (
    CORPUS,
    MisbehavingServer,
    Reply,
    check_one_line_error,
    load_cases,
    run_cli,
    visible_files,
)
from flow_emu import VOICE_ID, Emu, cnv_seed

from avatarpipe.batch.fetch import download, fetch_job, part_path
from avatarpipe.batch.plan import JobOptions, PlannedJob, VideoInput
from avatarpipe.errors import (
    AuthenticationError,
    DownloadError,
    ResponseError,
    TransientServiceError,
)
from avatarpipe.media.ffmpeg import run_ffmpeg
from avatarpipe.speech import BatchAvatarClient, Pipeline, RetryPolicy
from avatarpipe.speech.auth import KeyAuth
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesis, InputKind

# ------------------------------------------------------------------ data-driven CLI cases


def _param(case: dict[str, Any]) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if case.get("xfail") else []
    return pytest.param(case, id=case["id"], marks=marks)


def _names(case: dict[str, Any], file: Path) -> tuple[str, ...]:
    names = [file.name]
    if case.get("field"):
        names.append(case["field"] + ":")
    return tuple(names)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory (no .env, no outputs/) with no avatarpipe settings."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    return work


def test_the_corpus_holds_at_least_forty_distinct_cases() -> None:
    cases = load_cases()
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids))
    assert len(cases) >= 40
    for case in cases:
        re.compile(case["message"])
        assert (CORPUS / case["script"]).exists() or case["id"] == "script-missing"


@pytest.mark.parametrize("case", [_param(c) for c in load_cases("script") + load_cases("bulk")])
def test_bad_script_is_one_line_exit_2_and_writes_nothing(
    case: dict[str, Any], isolated: Path
) -> None:
    script = CORPUS / case["script"]
    extra = ["--csv", str(CORPUS / case["csv"])] if case.get("csv") else []
    named = CORPUS / case["csv"] if case.get("csv") else script
    names = _names(case, named)

    checked = run_cli(["validate", str(script), *extra])
    check_one_line_error(checked, exit_code=case["exit"], pattern=case["message"], names=names)
    assert not checked.stdout.strip(), "validate printed ok lines for an invalid script"

    out = isolated / "out"
    ran = run_cli(["run", str(script), "--out", str(out), *extra])
    check_one_line_error(ran, exit_code=case["exit"], pattern=case["message"], names=names)
    assert visible_files(out) == []
    assert visible_files(isolated) == []


@pytest.mark.parametrize("case", [_param(c) for c in load_cases("setting")])
def test_bad_setting_is_one_line_exit_2_naming_the_variable(
    case: dict[str, Any], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.get("env", {}).items():
        monkeypatch.setenv(name, value)
    out = isolated / "out"
    ran = run_cli(["run", str(CORPUS / case["script"]), "--out", str(out), *case.get("args", [])])
    check_one_line_error(ran, exit_code=case["exit"], pattern=case["message"])
    assert visible_files(out) == []
    assert visible_files(isolated) == []


def test_injection_through_a_csv_row_is_spoken_not_executed(isolated: Path) -> None:
    from avatarpipe.scripts.jobs import scene_inputs
    from avatarpipe.scripts.loader import load_bulk

    (script,) = load_bulk(
        CORPUS / "valid/bulk-injection-is-spoken.csv", CORPUS / "valid/bulk-template.yaml"
    )
    ssml = scene_inputs(script)[0].video.content
    assert "{{ 7*7 }}" in ssml and "49" not in ssml
    assert "&lt;/voice&gt;&lt;voice name=" in ssml
    assert ssml.count("<voice ") == 1


# ------------------------------------------------------------------ service cases, whole flow

STANDARD = """title: Service case
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaMultilingualNeural}
scenes:
  - text: Hello.
"""


def _script(tmp_path: Path, *, avatar: str | None = None, voice: str | None = None) -> Path:
    text = STANDARD
    if avatar:
        text = text.replace("{character: lisa, style: casual-sitting}", avatar)
    if voice:
        text = text.replace("{name: en-US-AvaMultilingualNeural}", voice)
    path = tmp_path / "service-case.yaml"
    path.write_text(text)
    return path


def _point_at(emu: Emu, monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> None:
    monkeypatch.setenv("AVATARPIPE_SPEECH_ENDPOINT", emu.url)
    monkeypatch.setenv("AVATARPIPE_BACKEND", "emulator")
    monkeypatch.setenv("AVATARPIPE_REQUESTS_PER_MINUTE", "6000")
    if key is not None:
        monkeypatch.setenv("AVATARPIPE_SPEECH_KEY", key)


def _run_service_case(script: Path, out: Path) -> Any:
    return run_cli(["run", str(script), "--out", str(out), "--poll", "0.2"])


CUSTOM = "{character: contoso-presenter, customized: true}"
CNV = f"{{name: ContosoNeural, deployment_id: {VOICE_ID}}}"


@pytest.mark.usefixtures("prefect_harness")
class TestServiceCases:
    def test_wrong_key_is_401_with_how_to_fix(
        self, make_emu: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        emu: Emu = make_emu(key="right")
        emu.http.headers["Ocp-Apim-Subscription-Key"] = "right"
        _point_at(emu, monkeypatch, key="wrong-key-0123456789")
        ran = _run_service_case(_script(isolated), isolated / "out")
        line = check_one_line_error(ran, exit_code=1, pattern=r"401")
        print(line)
        assert re.search(r"(?i)valid key|AVATARPIPE_SPEECH_KEY", line)
        assert "wrong-key-0123456789" not in line
        assert visible_files(isolated / "out") == []
        assert emu.stats()["jobs_created"] == 0

    def test_wrong_key_before_the_custom_avatar_check_is_401(
        self, make_emu: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        emu: Emu = make_emu(key="right")
        _point_at(emu, monkeypatch, key="wrong-key-0123456789")
        ran = _run_service_case(_script(isolated, avatar=CUSTOM), isolated / "out")
        line = check_one_line_error(ran, exit_code=1, pattern=r"401")
        assert "AVATARPIPE_SPEECH_KEY" in line
        assert visible_files(isolated / "out") == []

    def test_cnv_in_another_resource_names_the_copy_steps(
        self, emu: Emu, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _point_at(emu, monkeypatch)  # nothing seeded: the endpoint lives elsewhere
        ran = _run_service_case(_script(isolated, voice=CNV), isolated / "out")
        check_one_line_error(
            ran,
            exit_code=1,
            pattern=rf"custom voice 'ContosoNeural': endpoint {VOICE_ID} does not exist in this "
            r"Speech resource.*copy",
        )
        assert visible_files(isolated / "out") == []
        assert emu.stats()["jobs_created"] == 0

    def test_cnv_serving_another_voice_name(
        self, emu: Emu, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        emu.seed(cnv_seed(voice_name="SomeoneElseNeural"))
        _point_at(emu, monkeypatch)
        ran = _run_service_case(_script(isolated, voice=CNV), isolated / "out")
        check_one_line_error(ran, exit_code=1, pattern=r"SomeoneElseNeural|ContosoNeural")
        assert visible_files(isolated / "out") == []
        assert emu.stats()["jobs_created"] == 0

    def test_custom_avatar_that_does_not_exist(
        self, emu: Emu, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _point_at(emu, monkeypatch)
        ran = _run_service_case(_script(isolated, avatar=CUSTOM), isolated / "out")
        check_one_line_error(
            ran, exit_code=1, pattern=r"custom avatar 'contoso-presenter' does not exist"
        )
        assert visible_files(isolated / "out") == []

    def test_avatar_not_deployed_and_the_cap_of_ten_reached(
        self, emu: Emu, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        others = [{"name": f"other-{i}", "deployed": True} for i in range(10)]
        emu.seed({"avatars": [*others, {"name": "contoso-presenter", "deployed": False}]})
        _point_at(emu, monkeypatch)
        ran = _run_service_case(_script(isolated, avatar=CUSTOM), isolated / "out")
        check_one_line_error(
            ran, exit_code=1, pattern=r"contoso-presenter.*could not be deployed.*at most 10"
        )
        assert visible_files(isolated / "out") == []
        assert emu.stats()["jobs_created"] == 0

    def test_avatar_deployment_that_fails(
        self, emu: Emu, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        emu.seed({"avatars": [{"name": "contoso-presenter", "deployed": False}]})
        emu.configure(faults={"fail_next_deployments": 1})
        _point_at(emu, monkeypatch)
        ran = _run_service_case(_script(isolated, avatar=CUSTOM), isolated / "out")
        check_one_line_error(
            ran, exit_code=1, pattern=r"contoso-presenter.*deployment failed.*Speech Studio"
        )
        assert visible_files(isolated / "out") == []


# ------------------------------------------------------------------ misbehaving service, library

JOB_ID = "corpus-job-1"


def _job_body(base: str, *, size: int | None = None, status: str = "Succeeded") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": JOB_ID,
        "status": status,
        "createdDateTime": "2024-03-15T10:28:23Z",
        "lastActionDateTime": "2024-03-15T10:28:46Z",
        "inputKind": "SSML",
        "customVoices": {},
        "properties": {"timeToLiveInHours": 744, "succeededCount": 1, "failedCount": 0},
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoFormat": "Mp4",
            "videoCodec": "h264",
        },
        "outputs": {
            "result": f"{base}/results/{JOB_ID}/0001.mp4?sv=1&se=9&sig=c2lnbmF0dXJl",
            "summary": f"{base}/results/{JOB_ID}/summary.json?sv=1&se=9&sig=c2lnbmF0dXJl",
        },
    }
    if size is not None:
        body["properties"]["sizeInBytes"] = size
    return body


@contextlib.contextmanager
def _client(url: str) -> Iterator[BatchAvatarClient]:
    auth = KeyAuth("corpus-key-abcdef")
    with Pipeline(url, auth=auth, retry=RetryPolicy(max_attempts=1)) as pipeline:
        yield BatchAvatarClient(pipeline)


def _planned() -> PlannedJob:
    options = JobOptions(
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
        )
    )
    return PlannedJob(
        job_id=JOB_ID,
        inputs=(VideoInput(key="scene-001", content="<speak/>", input_kind=InputKind.SSML),),
        options=options,
        work_hash="0" * 16,
    )


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "tiny.mp4"
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", "testsrc=size=160x90:rate=15:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", "-movflags", "+faststart", "-y", str(path),
        ],
        what="tiny corpus video",
    )  # fmt: skip
    return path.read_bytes()


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("case", "body", "pattern"),
    [
        ("truncated-json", b'{"id": "corpus-job-1", "status": "Succ', r"body that is not JSON"),
        ("html-instead-of-json", b"<html><body>Gateway</body></html>", r"not JSON"),
        ("empty-body", b"", r"not JSON"),
        ("wrong-status-enum", json.dumps(_job_body("http://x", status="Exploded")).encode(), r"does not fit BatchSynthesis: status"),
        ("json-array", b"[1, 2, 3]", r"does not fit BatchSynthesis"),
    ],
    ids=lambda v: v if isinstance(v, str) and "-" in v and " " not in v else "",
)  # fmt: skip
def test_malformed_job_answer_is_a_response_error(case: str, body: bytes, pattern: str) -> None:
    reply = Reply(200, body, JSON)
    with (
        MisbehavingServer(lambda m, p: reply) as server,
        _client(server.url) as client,
        pytest.raises(ResponseError) as info,
    ):
        client.get_synthesis(JOB_ID)
    message = info.value.message
    assert re.search(pattern, message), message
    assert f"/avatar/batchsyntheses/{JOB_ID}" in message
    assert "\n" not in message and "corpus-key-abcdef" not in message


def test_malformed_list_page_is_a_response_error() -> None:
    page = b'{"value": [{"id": "a", "status": "Running"}, {"id": 42, "status": ' + b"}"
    with (
        MisbehavingServer(lambda m, p: Reply(200, page, JSON)) as server,
        _client(server.url) as client,
        pytest.raises(ResponseError) as info,
    ):
        list(client.list_syntheses())
    assert "GET /avatar/batchsyntheses" in info.value.message
    assert "not JSON" in info.value.message


def test_a_401_with_an_html_body_is_an_authentication_error() -> None:
    reply = Reply(401, b"<html>denied</html>", {"Content-Type": "text/html"})
    with (
        MisbehavingServer(lambda m, p: reply) as server,
        _client(server.url) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.get_synthesis(JOB_ID)
    assert "401" in info.value.message and "corpus-key-abcdef" not in info.value.message


def test_a_500_with_garbage_is_transient() -> None:
    reply = Reply(500, b"\x00\xff garbage", {"Content-Type": "application/octet-stream"})
    with (
        MisbehavingServer(lambda m, p: reply) as server,
        _client(server.url) as client,
        pytest.raises(TransientServiceError) as info,
    ):
        client.get_synthesis(JOB_ID)
    assert "500" in info.value.message


def test_video_cut_short_of_its_content_length_leaves_nothing(
    tmp_path: Path, tiny_mp4: bytes
) -> None:
    reply = Reply(200, tiny_mp4, {"Content-Type": "video/mp4"}, cut_at=len(tiny_mp4) // 3)
    dest = tmp_path / "0001.mp4"
    with (
        MisbehavingServer(lambda m, p: reply) as server,
        _client(server.url) as client,
        pytest.raises(DownloadError) as info,
    ):
        download(client.stream, f"{server.url}/results/x/0001.mp4?sig=c2VjcmV0", dest)
    assert "c2VjcmV0" not in info.value.message
    assert not dest.exists() and not part_path(dest).exists()


def _serve_job(base_body: dict[str, Any], video: Reply, summary: Reply | None = None) -> Any:
    def route(method: str, path: str) -> Reply | None:
        if path.startswith(f"/avatar/batchsyntheses/{JOB_ID}"):
            return Reply(200, json.dumps(base_body).encode(), JSON)
        if "/0001.mp4" in path:
            return video
        if "/summary.json" in path:
            return summary or Reply(404, b"")
        return None

    return route


def _fetch(tmp_path: Path, body_of: Any, video: Reply) -> tuple[Path, BaseException]:
    cache = tmp_path / "cache"
    server = MisbehavingServer(lambda m, p: None)
    body = body_of(server.url)
    server.route = _serve_job(body, video)
    job = BatchSynthesis.model_validate(body)
    with server, _client(server.url) as client, pytest.raises(DownloadError) as info:
        fetch_job(client, job, _planned(), cache)
    return cache / JOB_ID, info.value


def test_video_cut_mid_body_while_fetching_a_job_leaves_nothing(
    tmp_path: Path, tiny_mp4: bytes
) -> None:
    cut = Reply(200, tiny_mp4, cut_at=len(tiny_mp4) // 2)  # Content-Length says the full size
    folder, exc = _fetch(tmp_path, lambda base: _job_body(base, size=len(tiny_mp4)), cut)
    assert re.search(r"GET http://127\.0\.0\.1:\d+/results/.*0001\.mp4\?\*\*\*", exc.args[0])
    assert re.search(r"incomplete|after \d+ bytes", exc.args[0]), exc.args[0]
    assert not (folder / "0001.mp4").exists()
    assert list(folder.glob("*.part")) == []


def test_truncated_video_without_a_size_fails_verification_and_is_removed(
    tmp_path: Path, tiny_mp4: bytes
) -> None:
    half = tiny_mp4[: len(tiny_mp4) // 2]
    folder, exc = _fetch(tmp_path, lambda base: _job_body(base), Reply(200, half))
    assert "0001.mp4: downloaded file is not a readable video" in exc.args[0]
    assert not (folder / "0001.mp4").exists()
    assert not (folder / "0001.mp4.verified.json").exists()


def test_content_length_that_lies_about_the_expected_size(tmp_path: Path, tiny_mp4: bytes) -> None:
    folder, exc = _fetch(
        tmp_path, lambda base: _job_body(base, size=len(tiny_mp4) + 1000), Reply(200, tiny_mp4)
    )
    assert re.search(r"Content-Length \d+ differs from the expected \d+ bytes", exc.args[0])
    assert not (folder / "0001.mp4").exists()


def test_a_video_that_is_not_a_video(tmp_path: Path) -> None:
    junk = b"<html>this is an error page, not an mp4</html>" * 20
    folder, exc = _fetch(tmp_path, lambda base: _job_body(base, size=len(junk)), Reply(200, junk))
    assert "not a readable video" in exc.args[0]
    assert not (folder / "0001.mp4").exists()
