"""ensure_avatar_deployment / ensure_custom_voice / teardown flows against the emulator."""

from __future__ import annotations

import pytest
from flow_emu import VOICE_ID, Emu, cnv_seed

from avatarpipe.errors import CustomVoiceError, DeploymentError
from flows.connections import SpeechTarget
from flows.preflight import ensure_avatar_deployment, ensure_custom_voice, teardown

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _target(emu: Emu) -> SpeechTarget:
    return SpeechTarget(endpoint=emu.url, backend="emulator", requests_per_minute=6000)


def _deployment(emu: Emu, name: str) -> str | None:
    body = emu.admin.get_avatar(name) or {}
    return (body.get("deployment") or {}).get("status")


def test_a_deployed_avatar_is_left_alone(emu: Emu) -> None:
    emu.seed({"avatars": [{"name": "contoso-ceo", "deployed": True}]})
    assert ensure_avatar_deployment("contoso-ceo", _target(emu), poll_interval_s=0.05) == "deployed"
    assert _deployment(emu, "contoso-ceo") == "Succeeded"


def test_an_undeployed_avatar_is_deployed_on_demand(emu: Emu) -> None:
    emu.configure(time_scale=0.002)  # the modelled 120 s deployment takes ~0.25 s
    emu.seed({"avatars": [{"name": "contoso-ceo", "deployed": False}]})
    assert _deployment(emu, "contoso-ceo") is None
    ensure_avatar_deployment("contoso-ceo", _target(emu), poll_interval_s=0.05)
    assert _deployment(emu, "contoso-ceo") == "Succeeded"


def test_standard_avatars_skip_the_check(emu: Emu) -> None:
    assert ensure_avatar_deployment("lisa", _target(emu), customized=False) == "standard"
    assert "GET /emulator/avatars/{name}" not in emu.stats()["requests_by_route"]


def test_an_unknown_avatar_says_to_train_it(emu: Emu) -> None:
    with pytest.raises(DeploymentError, match=r"'ghost' does not exist.*train it in Speech Studio"):
        ensure_avatar_deployment("ghost", _target(emu))


def test_the_eleventh_deployment_is_refused_with_the_cap(emu: Emu) -> None:
    emu.seed(
        {
            "avatars": [{"name": f"avatar-{i}", "deployed": True} for i in range(10)]
            + [{"name": "one-too-many"}]
        }
    )
    with pytest.raises(DeploymentError, match=r"'one-too-many' could not be deployed.*10"):
        ensure_avatar_deployment("one-too-many", _target(emu))
    assert _deployment(emu, "one-too-many") is None


def test_a_failed_deployment_gives_the_studio_steps(emu: Emu) -> None:
    emu.configure(faults={"fail_next_deployments": 1})
    emu.seed({"avatars": [{"name": "contoso-ceo"}]})
    with pytest.raises(DeploymentError, match=r"deployment failed.*Speech Studio"):
        ensure_avatar_deployment("contoso-ceo", _target(emu), poll_interval_s=0.05)


def test_a_custom_voice_in_the_same_resource_passes(emu: Emu) -> None:
    emu.seed(cnv_seed("ContosoNeural"))
    assert ensure_custom_voice("ContosoNeural", VOICE_ID, _target(emu)) == "Succeeded"


def test_a_custom_voice_from_another_resource_says_to_copy_it(emu: Emu) -> None:
    emu.seed(cnv_seed("ContosoNeural"))
    other = "0b0e1a5e-0000-4000-8000-000000000001"
    with pytest.raises(
        CustomVoiceError, match=r"does not exist in this Speech resource.*copy the voice model"
    ):
        ensure_custom_voice("ContosoNeural", other, _target(emu))


def test_a_suspended_custom_voice_is_resumed_and_waited_for(emu: Emu) -> None:
    emu.configure(time_scale=0.002)
    emu.seed(cnv_seed("ContosoNeural", status="Disabled"))
    assert (
        ensure_custom_voice("ContosoNeural", VOICE_ID, _target(emu), poll_interval_s=0.05)
        == "Succeeded"
    )
    stats = emu.stats()["requests_by_route"]
    assert "POST /customvoice/endpoints/{id}:resume" in stats


def test_a_voice_name_mismatch_names_both_names(emu: Emu) -> None:
    emu.seed(cnv_seed("JessicaNeural"))
    with pytest.raises(CustomVoiceError, match=r"serves the voice 'JessicaNeural'"):
        ensure_custom_voice("ContosoNeural", VOICE_ID, _target(emu))


def test_teardown_suspends_the_voice_and_removes_the_avatar(emu: Emu) -> None:
    emu.configure(time_scale=0.0)
    emu.seed({**cnv_seed("ContosoNeural"), "avatars": [{"name": "contoso-ceo", "deployed": True}]})
    done = teardown("both", _target(emu), character="contoso-ceo", deployment_ids=[VOICE_ID])
    assert len(done) == 2
    assert _deployment(emu, "contoso-ceo") is None
    endpoint = emu.http.get(
        f"/customvoice/endpoints/{VOICE_ID}", params={"api-version": "2026-01-01"}
    ).json()
    assert endpoint["status"] in ("Disabling", "Disabled")
