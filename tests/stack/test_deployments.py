"""The deployments exist with their schedules and limits once registered with a Prefect API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client

from flows.connections import SpeechTarget
from flows.deployments import (
    ADHOC,
    DEFAULT_CRON,
    NIGHTLY,
    build_deployments,
    crash_automations,
    ensure_crash_reruns,
)

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
    assert by_name[ADHOC]["entrypoint"] == adhoc_entry(), "the same flows as `serve`"
    for dep in data["deployments"]:
        # Module paths: a worker runs in a folder of its own, not in the checkout.
        module, func = dep["entrypoint"].rsplit(".", 1)
        source = REPO / (module.replace(".", "/") + ".py")
        assert f"def {func}(" in source.read_text(encoding="utf-8")
        assert dep["work_pool"]["name"] == "avatarpipe"
    [pull] = data["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == (
        "{{ $AVATARPIPE_WORKDIR }}"
    )


def adhoc_entry() -> str:
    return str(build_deployments()[1].entrypoint)


@pytest.mark.usefixtures("prefect_harness")
def test_crash_reruns_are_registered_once_and_bounded() -> None:
    ensure_crash_reruns(crash_after_s=75)
    ensure_crash_reruns(crash_after_s=75)  # again: replaced, not doubled
    crash, rerun = crash_automations(75)
    with get_client(sync_client=True) as client:
        [stored_crash] = client.read_automations_by_name(crash.name)
        [stored_rerun] = client.read_automations_by_name(rerun.name)
    silent = stored_crash.trigger
    assert silent.posture == "Proactive" and silent.within.total_seconds() == 75  # type: ignore[union-attr]
    assert silent.after == {"prefect.flow-run.heartbeat"}  # type: ignore[union-attr]
    assert stored_crash.actions[0].state.value == "CRASHED"  # type: ignore[union-attr]
    # Rerun only runs that ran at most RERUNS times: a run that crashes every time stops.
    assert stored_rerun.trigger.match.root["prefect.run-count"] == ["1", "2"]  # type: ignore[union-attr]
    assert stored_rerun.actions[0].state.value == "SCHEDULED"  # type: ignore[union-attr]
