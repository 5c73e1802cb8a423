"""The deployments exist with their schedules and limits once registered with a Prefect API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client

from flows.connections import SpeechTarget
from flows.deployments import ADHOC, DEFAULT_CRON, NIGHTLY, build_deployments

REPO = Path(__file__).resolve().parents[2]


def test_build_deployments_has_a_nightly_schedule_and_an_unscheduled_adhoc() -> None:
    target = SpeechTarget(endpoint="http://127.0.0.1:8765", backend="emulator")
    nightly, adhoc = build_deployments(
        scripts="inbox", cron="30 1 * * *", timezone="Europe/Oslo", target=target
    )
    assert nightly.name == NIGHTLY and adhoc.name == ADHOC
    [schedule] = nightly.schedules or []
    assert schedule.schedule.cron == "30 1 * * *"  # type: ignore[union-attr]
    assert schedule.schedule.timezone == "Europe/Oslo"  # type: ignore[union-attr]
    assert schedule.active
    assert nightly.concurrency_limit == 1
    assert nightly.parameters["source"] == "inbox"
    assert nightly.parameters["target"]["endpoint"] == "http://127.0.0.1:8765"
    assert not adhoc.schedules
    assert nightly.entrypoint == "flows.nightly.nightly"
    assert adhoc.entrypoint == "flows.script_to_video.script_to_video"


@pytest.mark.usefixtures("prefect_harness")
def test_deployments_are_registered_with_schedules_and_limits() -> None:
    for deployment in build_deployments(scripts="inbox"):
        deployment.apply()
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name(f"nightly-scripts/{NIGHTLY}")
        adhoc = client.read_deployment_by_name(f"script-to-video/{ADHOC}")
    assert [s.schedule.cron for s in nightly.schedules] == [DEFAULT_CRON]  # type: ignore[union-attr]
    assert all(s.active for s in nightly.schedules)
    assert nightly.parameters == {"source": "inbox"}
    assert (
        nightly.global_concurrency_limit is not None and nightly.global_concurrency_limit.limit == 1
    )
    assert nightly.concurrency_options is not None
    assert nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert adhoc.schedules == []
    assert adhoc.global_concurrency_limit is not None and adhoc.global_concurrency_limit.limit == 2
    assert "avatarpipe" in nightly.tags


def test_prefect_yaml_mirrors_the_served_deployments() -> None:
    data = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    by_name = {d["name"]: d for d in data["deployments"]}
    assert set(by_name) == {NIGHTLY, ADHOC}
    assert by_name[NIGHTLY]["schedules"][0]["cron"] == DEFAULT_CRON
    assert by_name[NIGHTLY]["concurrency_limit"]["limit"] == 1
    assert "schedules" not in by_name[ADHOC]
    for dep in data["deployments"]:
        module, func = dep["entrypoint"].split(":")
        assert (REPO / module).is_file()
        assert f"def {func}(" in (REPO / module).read_text(encoding="utf-8")
