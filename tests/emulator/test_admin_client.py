"""EmulatorAdminClient, the one client of ``/emulator/``, against a real emulator over loopback."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from avatarpipe.errors import ServiceError
from avatarpipe.speech.emulator_admin import EmulatorAdminClient, max_in_window


def test_avatars_round_trip(emu: Any) -> None:
    admin = emu.api
    assert admin.get_avatar("contoso-ceo") is None
    created = admin.create_avatar("contoso-ceo")
    assert created["name"] == "contoso-ceo" and created["deployment"] is None
    assert admin.create_avatar("contoso-ceo")["createdDateTime"] == created["createdDateTime"]
    deploying = admin.deploy_avatar("contoso-ceo")
    assert deploying["deployment"]["status"] in ("NotStarted", "Running", "Succeeded")
    assert [a["name"] for a in admin.list_avatars()] == ["contoso-ceo"]
    assert admin.remove_deployment("contoso-ceo") is True
    assert (admin.get_avatar("contoso-ceo") or {})["deployment"] is None
    assert admin.remove_deployment("contoso-ceo") is False
    assert admin.delete_avatar("contoso-ceo") is True
    assert admin.delete_avatar("contoso-ceo") is False
    assert admin.list_avatars() == []


def test_seed_knobs_clock_faults_and_stats(emu: Any) -> None:
    admin = emu.api
    counts = admin.seed({"avatars": [{"name": "a1", "deployed": True}]})
    assert counts == {"avatars": 1, "projects": 0, "models": 0, "endpoints": 0}
    assert (admin.get_avatar("a1") or {})["deployment"]["status"] == "Succeeded"
    assert admin.configure(queue_delay_s=7)["queue_delay_s"] == 7
    assert admin.config()["queue_delay_s"] == 7
    faults = admin.set_faults(seed=3, p_429=0.25)["faults"]
    assert faults["seed"] == 3 and faults["p_429"] == 0.25
    assert admin.set_faults(p_500=0.5)["faults"]["p_429"] == 0.25  # merged, not replaced
    assert admin.set_clock_offset(60.0)["clock_offset_s"] == 60.0
    stats = admin.stats()
    assert stats["jobs_created"] == 0 and "requests_by_route" in stats
    assert admin.request_times() == []  # admin calls are not Azure API requests
    before = time.time()
    answered = emu.get_job("nope").status_code  # 404, or a fault set above
    (arrival,) = admin.request_times()
    assert arrival.route == "GET /avatar/batchsyntheses/{id}"
    assert arrival.status == str(answered)
    assert before <= arrival.at <= time.time()
    assert max_in_window([0.0, 59.9, 60.0, 60.5], 60.0) == 3


def test_errors_are_one_type_and_never_show_the_key(emu: Any) -> None:
    with pytest.raises(ServiceError) as refused:
        emu.api.configure(warp=9)
    assert refused.value.status_code == 400 and refused.value.code == "BadRequest"
    assert "warp" in refused.value.message
    with pytest.raises(ServiceError) as missing:
        emu.api.deploy_avatar("ghost")
    assert missing.value.status_code == 404 and missing.value.request_id
    with EmulatorAdminClient(emu.url, key="wrong-secret-key") as wrong:
        assert "wrong-secret-key" not in repr(wrong)
        with pytest.raises(ServiceError) as denied:
            wrong.stats()
    assert denied.value.status_code == 401
    assert "wrong-secret-key" not in str(denied.value)


def test_an_unreachable_emulator_is_a_service_error_without_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        EmulatorAdminClient(f"http://127.0.0.1:{port}", key="k") as admin,
        pytest.raises(ServiceError) as down,
    ):
        admin.stats()
    assert down.value.status_code is None
    assert "could not be reached" in down.value.message
