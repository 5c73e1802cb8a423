"""The main flow: a script (or a CSV of rows filling a template script) in, finished videos out.

validate -> SSML per scene -> checks before paying (output folder and room, blob container) ->
ensure avatar and voice -> synthesize (all scenes of all rows in one idempotent batch, asking
the result store first) -> post-process (one ffmpeg pass per output, outputs in parallel) ->
publish to ``outputs/<slug>/<run-id>/`` with ``manifest.json`` (and to Blob Storage when
configured) -> report -> optional teardown.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from avatarpipe import progress
from avatarpipe.batch.checks import check_before_paying
from avatarpipe.batch.estimate import check_cost_limit, estimate_from_settings
from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.media.postprocess import OutputResult, PostJob, concat_copy, process_outputs
from avatarpipe.publish.blob import ensure_container
from avatarpipe.publish.folder import RunDirectory, check_output_root, new_run_id
from avatarpipe.publish.release import PublishedVideo, release
from avatarpipe.publish.variants import joined_path, output_jobs
from avatarpipe.scripts.jobs import (
    RenderedScene,
    custom_avatar_scripts,
    custom_voices,
    run_label,
    scene_inputs,
    synthesis_requests,
)
from avatarpipe.scripts.loader import load_bulk, load_script
from avatarpipe.scripts.model import Script
from flows.connections import SpeechTarget, blob_store, settings
from flows.preflight import TeardownPolicy, ensure_avatar_deployment, ensure_custom_voice, teardown
from flows.report import report_run
from flows.synthesize import synthesize

__all__ = ["PublishedVideo", "RunOptions", "script_to_video"]


class RunOptions(BaseModel):
    """How a run behaves (flow parameter; no secrets).

    Attributes:
        out_dir: The output root.
        poll_interval_s: Seconds between polling rounds.
        timeout_s: Overall deadline for the batch jobs.
        postprocess: Run the post-processing preset (else scenes are only joined).
        teardown: Stop paying for idle hosting afterwards (see the ``teardown`` flow).
        delete_jobs: Delete finished jobs on the service after a verified download.
        pack: Pack scenes into multi-input jobs when a blob container is configured.
        run_id: Use this run id instead of a new one.
        retry_failed: Resubmit scenes whose last job failed for a permanent reason (after the
            cause, outside the script, was fixed); transient failures are always retried.
    """

    out_dir: str = "outputs"
    poll_interval_s: float = Field(default=20.0, gt=0)
    timeout_s: float = Field(default=4 * 3600.0, gt=0)
    postprocess: bool = True
    teardown: TeardownPolicy = "keep"
    delete_jobs: bool = False
    pack: bool = True
    run_id: str | None = None
    retry_failed: bool = False


def _run_name() -> str:
    params = flow_run.parameters or {}
    name = Path(str(params.get("script_path", "script"))).stem
    return f"video-{name}"


@task(name="validate", task_run_name="validate-{script_path}", cache_policy=NO_CACHE)
def load_scripts(script_path: str, csv_path: str | None) -> list[Script]:
    """Load and validate the script (or the CSV rows filling it)."""
    if csv_path:
        return load_bulk(csv_path, script_path)
    return [load_script(script_path)]


@task(name="check-before-paying", cache_policy=NO_CACHE)
def check_before_paying_task(out_dir: str, scripts: list[Script], postprocess: bool) -> None:
    """Output folder writable with room, blob container reachable: before anything is paid."""
    check_before_paying(Path(out_dir), scripts, blob_store(), postprocess=postprocess)


@task(name="render-ssml", task_run_name="ssml-{script.slug}", cache_policy=NO_CACHE)
def render_ssml(script: Script) -> list[RenderedScene]:
    """Render every scene of one script to well-formed SSML."""
    return scene_inputs(script)


@task(name="post-process", task_run_name="post-process-{label}", cache_policy=NO_CACHE)
def post_process(jobs: list[PostJob], label: str) -> list[OutputResult]:
    """Render every output (one ffmpeg pass each, several at once)."""
    results = process_outputs(jobs)
    for result in results:
        progress.report("postprocessed", result.path.name, size=result.size_bytes)
    return results


@task(name="join-scenes", task_run_name="join-{label}", cache_policy=NO_CACHE)
def join_scenes(scenes: list[Path], out: Path, label: str) -> Path:
    """Join scenes without re-encoding (no post-processing preset)."""
    concat_copy(scenes, out)
    progress.report("postprocessed", out.name, str(out))
    return out


def _preflight(scripts: list[Script], target: SpeechTarget) -> set[tuple[str, str]]:
    """Make the custom voices and avatars usable; return the (voice, deployment id) pairs.

    The voices come first: their check is free, while the avatar check on Azure is a paid probe
    job, so a misspelt voice must fail before anything is paid for.
    """
    voices = {(s.voice.name, str(s.voice.deployment_id)) for s in scripts if s.voice.deployment_id}
    for voice_name, deployment_id in sorted(voices):
        ensure_custom_voice(voice_name, deployment_id, target)
    for first in custom_avatar_scripts(scripts):
        ensure_avatar_deployment(
            first.avatar.character,
            target,
            customized=True,
            probe_voice=first.voice.name,
            probe_custom_voices=custom_voices(first),
        )
    return voices


def _teardown(
    policy: TeardownPolicy,
    scripts: list[Script],
    target: SpeechTarget,
    voices: set[tuple[str, str]],
) -> None:
    """Stop paying for the run's idle custom avatar and voices (``keep``: leave them)."""
    if policy == "keep":
        return
    characters = sorted({s.avatar.character for s in scripts if s.avatar.customized})
    teardown(
        policy,
        target,
        character=characters[0] if characters else None,
        deployment_ids=sorted({d for _, d in voices}),
    )


def _synthesize_all(
    scripts: list[Script],
    per_script: dict[str, list[RenderedScene]],
    target: SpeechTarget,
    opts: RunOptions,
    label: str,
) -> SynthesisOutcome:
    """One ``synthesize`` run per avatar and custom voice set; their outcomes merged."""
    requests = synthesis_requests(
        scripts,
        per_script,
        label=label,
        pack=opts.pack,
        cache_dir=str(Path(opts.out_dir) / ".cache" / "jobs"),
        poll_interval_s=opts.poll_interval_s,
        timeout_s=opts.timeout_s,
        delete_after_download=opts.delete_jobs,
        retry_failed=opts.retry_failed,
    )
    return SynthesisOutcome.merge([synthesize(request, target) for request in requests])


def _render(
    scripts: list[Script],
    scene_files: dict[str, list[Path]],
    run_dirs: dict[str, RunDirectory],
    postprocess: bool,
    label: str,
) -> dict[str, list[OutputResult] | None]:
    """Each script's outputs, rendered into its run folder (``None``: scenes only joined)."""
    if not postprocess:
        for s in scripts:
            join_scenes(scene_files[s.slug], joined_path(s, run_dirs[s.slug]), s.slug)
        return dict.fromkeys(run_dirs)
    jobs = {s.slug: output_jobs(s, scene_files[s.slug], run_dirs[s.slug]) for s in scripts}
    flat = [job for slug_jobs in jobs.values() for job in slug_jobs]
    results = iter(post_process(flat, label) if flat else [])
    return {slug: [next(results) for _ in slug_jobs] for slug, slug_jobs in jobs.items()}


@flow(name="script-to-video", flow_run_name=_run_name, log_prints=True)
def script_to_video(
    script_path: str,
    target: SpeechTarget,
    options: RunOptions | None = None,
    csv_path: str | None = None,
) -> list[PublishedVideo]:
    """Turn a script (or every row of a CSV filling it) into finished, published videos.

    Args:
        script_path: The script YAML (the template script when ``csv_path`` is given).
        target: Where the Speech service is.
        options: How the run behaves.
        csv_path: A CSV whose rows fill ``{{ column }}`` placeholders: one video per row.

    Returns:
        One published folder per script (per row).

    Raises:
        ConfigError: The output root is not a writable folder or lacks room, the blob
            container cannot be reached, or the run's estimated cost is above
            ``AVATARPIPE_MAX_COST_PER_RUN`` (nothing is submitted).
        ScriptError: The script or CSV is invalid (nothing is submitted).
        DeploymentError: The custom avatar is not usable.
        CustomVoiceError: The custom voice is not usable in this resource.
        SynthesisFailedError: Jobs failed for a reason a resubmission cannot fix.
        MediaError: Post-processing failed (nothing is published for that script).
    """
    opts = options or RunOptions()
    check_output_root(Path(opts.out_dir))
    logger = get_run_logger()
    started = time.monotonic()
    scripts = load_scripts(script_path, csv_path)
    per_script = {s.slug: render_ssml(s) for s in scripts}
    check_before_paying_task(opts.out_dir, scripts, opts.postprocess)
    # Every path (CLI, deployment) passes the cost limit before anything is paid for.
    conf = settings().model_copy(update={"output_dir": Path(opts.out_dir)})
    estimate = estimate_from_settings(
        scripts, conf, pack=opts.pack, delete_jobs=opts.delete_jobs, retry_failed=opts.retry_failed
    )
    check_cost_limit(estimate, conf.max_cost_per_run)
    timings = {"validate": time.monotonic() - started}
    t0 = time.monotonic()
    voices = _preflight(scripts, target)
    timings["preflight"] = time.monotonic() - t0
    t0 = time.monotonic()
    label = run_label(scripts)
    outcome = _synthesize_all(scripts, per_script, target, opts, label)
    timings["synthesize"] = time.monotonic() - t0
    t0 = time.monotonic()
    videos = {v.key: Path(v.path) for v in outcome.videos}
    scene_files = {slug: [videos[s.video.key] for s in ss] for slug, ss in per_script.items()}
    run_id = opts.run_id or new_run_id(str(flow_run.id or "local"))
    run_dirs = {s.slug: RunDirectory(Path(opts.out_dir), s.slug, run_id) for s in scripts}
    try:
        results = _render(scripts, scene_files, run_dirs, opts.postprocess, label)
    except BaseException:
        for run_dir in run_dirs.values():
            run_dir.abandon()
        raise
    timings["postprocess"] = time.monotonic() - t0
    published: list[PublishedVideo] = []
    store = ensure_container(blob_store())
    for script in scripts:
        timings["total"] = time.monotonic() - started
        item = release(
            script,
            run_dirs[script.slug],
            per_script[script.slug],
            outcome,
            results[script.slug],
            store=store,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            backend=target.backend,
            endpoint=target.endpoint,
            timings=timings,
            estimate=estimate.billing_for(f"{script.slug}/"),
        )
        published.append(item)
        progress.report("published", script.slug, item.folder)
        emit_event(
            "avatarpipe.video.published",
            resource={"prefect.resource.id": f"avatarpipe.run.{script.slug}.{run_id}"},
            payload={"folder": item.folder, "videos": [Path(v).name for v in item.videos]},
        )
        logger.info("published %s", item.folder)
    report_run(published, outcome, store)
    _teardown(opts.teardown, scripts, target, voices)
    return published
