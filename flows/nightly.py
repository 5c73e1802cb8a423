"""The nightly sweep: render only the scripts that are new or changed since their last render.

The source is a folder of script files or ``blob:<prefix>`` in the configured container; the
index of what was rendered (:mod:`avatarpipe.publish.nightly_index`) decides which scripts are
new or changed. Only those go through ``script-to-video``, one after the other (all runs share
the Speech rate budget anyway). A failed script keeps its old hash, so the next night retries it:
its scenes already verified are reused from the result store, and the jobs that failed are
resubmitted under their next attempt ids (a permanent failure is reported again, for no request,
until the deployment runs with ``retry_failed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from avatarpipe.errors import AvatarpipeError
from avatarpipe.publish import nightly_index
from avatarpipe.publish.folder import check_output_root
from avatarpipe.publish.nightly_index import NightlyResult, script_digest, source_key
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.publish.summary import nightly_markdown
from flows.connections import SpeechTarget, settings, target_from_settings
from flows.report import report_nightly
from flows.script_to_video import RunOptions, script_to_video

__all__ = ["NightlyResult", "nightly"]


@task(name="collect-scripts", task_run_name="collect-{source}", cache_policy=NO_CACHE)
def collect_scripts(source: str, out_dir: str) -> tuple[list[str], str]:
    """List the source's script files (mirroring a blob prefix locally first).

    Returns:
        The local script paths (sorted) and the folder they are named relative to.

    Raises:
        ConfigError: The folder does not exist, or ``blob:`` without a blob setting.
        StorageError: The container could not be read.
    """
    store = nightly_index.source_store(source, settings())
    return nightly_index.collect_scripts(source, out_dir, store)


def _render(path: str, target: SpeechTarget, opts: RunOptions) -> list[PublishedVideo] | str:
    """Render one script as a subflow: what it published, or why it failed."""
    state = script_to_video(
        path, target, opts.model_copy(update={"run_id": None}), None, return_state=True
    )
    if state.is_completed():
        published: list[PublishedVideo] = state.result()
        return published
    reason = str(state.message or state.name)
    try:
        state.result()
    except AvatarpipeError as exc:
        reason = exc.message
    except Exception as exc:  # noqa: BLE001 - any failure of one script is recorded
        reason = f"{type(exc).__name__}: {exc}"
    return reason


@flow(name="nightly-scripts", flow_run_name="nightly-{source}", log_prints=True)
def nightly(
    source: str = "scripts",
    target: SpeechTarget | None = None,
    options: RunOptions | None = None,
    force: bool = False,
) -> NightlyResult:
    """Render every new or changed script of a folder (or a ``blob:<prefix>``).

    Args:
        source: A folder of ``*.yaml`` scripts, or ``blob:<prefix>`` in the configured container.
        target: Where the Speech service is (default: from ``AVATARPIPE_SPEECH_ENDPOINT``).
        options: How each render behaves (default: output root from ``AVATARPIPE_OUTPUT_DIR``).
        force: Render every script, changed or not.

    Returns:
        What was rendered, skipped and failed.

    Raises:
        ConfigError: No endpoint, a missing folder, an output root that is not a writable
            folder, or ``blob:`` without a blob setting.
        StorageError: The index could not be read or written.
        OutcomeError: At least one script failed (raised after all others ran; the failed
            scripts keep their old hash and are retried next time).
    """
    logger = get_run_logger()
    chosen = target or target_from_settings()
    opts = options or RunOptions(out_dir=str(settings().output_dir))
    check_output_root(Path(opts.out_dir))  # each script's run checks the rest before paying
    paths, folder = collect_scripts(source, opts.out_dir)
    store = nightly_index.source_store(source, settings())
    index = nightly_index.index_for(source, opts.out_dir, store).load()
    result = NightlyResult(source=source)
    rendered_rows: list[dict[str, Any]] = []
    names = {path: str(Path(path).relative_to(folder)) for path in paths}
    for path, name in names.items():
        try:
            digest = script_digest(path)
        except AvatarpipeError as exc:
            result.failed[name] = exc.message
            logger.error("script %s is invalid: %s", name, exc.message)
            continue
        if not force and not index.changed(name, digest):
            result.skipped.append(name)
            continue
        logger.info("rendering %s (%s)", name, "new" if name not in index.entries else "changed")
        published = _render(path, chosen, opts)
        if isinstance(published, str):
            result.failed[name] = published
            logger.error("script %s failed: %s", name, published)
            continue
        folders = index.record(name, digest, published)
        result.rendered.append(name)
        result.folders.extend(folders)
        rendered_rows.append({"script": name, "sha256": digest, "folder": ", ".join(folders)})
    index.keep_only(set(names.values()))
    report_nightly(nightly_markdown(source, rendered_rows, result.skipped, result.failed))
    logger.info(
        "nightly %s: %d rendered, %d unchanged, %d failed",
        source,
        len(result.rendered),
        len(result.skipped),
        len(result.failed),
    )
    for name, reason in result.failed.items():
        emit_event(
            "avatarpipe.script.failed",
            resource={"prefect.resource.id": f"avatarpipe.script.{source_key(name)}"},
            payload={"script": name, "source": source, "reason": reason[:500]},
        )
    error = result.error()
    if error is not None:
        raise error
    return result
