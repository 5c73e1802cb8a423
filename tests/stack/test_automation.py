"""The README's failure-notification automation, run as written against a real Prefect API.

A local HTTP server stands in for the Slack/Teams webhook; an ``avatarpipe.script.failed``
event must reach it through the automation (triggers and actions run in the Prefect server).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _readme_automation() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running it unattended", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    [code] = [b for b in blocks if "Automation(" in b]
    return code


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("prefect_harness")
def test_readme_automation_notifies_a_webhook_when_a_script_fails(
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    code = _readme_automation()
    code = re.sub(r"^WEBHOOK_URL = .*$", f"WEBHOOK_URL = {url!r}", code, count=1, flags=re.M)
    # A loopback URL stands in for the real webhook, which Prefect refuses unless allowed.
    code = code.replace("url=WEBHOOK_URL,", "url=WEBHOOK_URL, allow_private_urls=True,")
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the documented example, as written

    from prefect.automations import Automation
    from prefect.events import emit_event

    assert Automation.read(name="avatarpipe: notify on failure") is not None
    # The triggers service picks new automations up on its own cadence: emit until one fires.
    deadline = time.monotonic() + 45
    while not received and time.monotonic() < deadline:
        emit_event(
            "avatarpipe.script.failed",
            resource={"prefect.resource.id": "avatarpipe.script.test-broken"},
            payload={"script": "broken.yaml", "reason": "scenes: at least one scene"},
        )
        for _ in range(10):
            if received:
                break
            time.sleep(0.5)
    assert received, "the webhook was not called within 45 s"
    text = received[0]["text"]
    assert text.startswith(
        "avatarpipe failure: avatarpipe.script.failed on avatarpipe.script.test-broken"
    )
    assert "broken.yaml" in text
