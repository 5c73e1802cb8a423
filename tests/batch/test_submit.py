"""Idempotent submission against the real emulator over HTTP."""

from __future__ import annotations

from typing import Any

from avatarpipe.batch.submit import JobLookup, submit_jobs


def test_submit_looks_up_first_and_a_second_submit_puts_nothing(
    make_emu: Any, make_jobs: Any, batch_client: Any
) -> None:
    emu = make_emu()
    jobs = make_jobs(5)
    with batch_client(emu.url) as client:
        lookup = JobLookup(client)
        created: list[bool] = []
        submit_jobs(client, lookup, jobs, on_submitted=lambda _j, _v, c: created.append(c))
        assert created == [True] * 5
        again: list[bool] = []
        views = submit_jobs(
            client, JobLookup(client), jobs, on_submitted=lambda _j, _v, c: again.append(c)
        )
        assert again == [False] * 5
        assert set(views) == {j.job_id for j in jobs}
    stats = emu.stats()
    assert all(count == 1 for count in stats["puts_by_job_id"].values())
    # Each submit looked all five ids up with one list call, not five GETs.
    assert stats["requests_by_route"]["GET /avatar/batchsyntheses"]["200"] == 2
    assert "GET /avatar/batchsyntheses/{id}" not in stats["requests_by_route"]
