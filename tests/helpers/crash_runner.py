"""Run the ``synthesize`` flow in a child process, so that a test can SIGKILL it and rerun it.

The emulator lives in the test process (it survives the child's death); the child reaches the
test's Prefect API through ``PREFECT_API_URL``. Progress events go, one JSON object a line, to
``--progress`` as they happen (the test reads it to know which stage the run is in), and the
outcome goes to ``--result`` (written atomically) when the flow returns.

    python tests/helpers/crash_runner.py --endpoint URL --cache DIR --label L --scenes N \
        --progress FILE --result FILE [--poll 0.2] [--rpm 6000] [--rate-limit-name NAME]

Exit status: 0 when the flow returned, 1 when it raised (the error's one line on stderr).

The same :func:`build_request` is imported by the tests, so parent and child plan the same
deterministic job ids.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, VideoCodec

SCENE_TEXT = "Scene {i} of {label} says hello."


def build_request(
    label: str,
    scenes: int,
    cache_dir: Path,
    *,
    poll_interval_s: float = 0.2,
    timeout_s: float = 300.0,
    max_resubmits: int = 2,
    text: str = SCENE_TEXT,
) -> Any:
    """The ``SynthesisRequest`` of ``scenes`` PlainText scenes (same ids in every process).

    Args:
        label: The run's label (part of every job id).
        scenes: How many scenes (one video each).
        cache_dir: The download cache.
        poll_interval_s: Seconds between polling rounds.
        timeout_s: Deadline for all jobs.
        max_resubmits: Resubmissions per job after a service-side failure.
        text: Scene text, formatted with ``i`` (1-based) and ``label``.

    Returns:
        A ``flows.synthesize.SynthesisRequest``.
    """
    from avatarpipe.batch.run import SynthesisRequest, VideoInput

    return SynthesisRequest(
        label=label,
        inputs=[
            VideoInput(
                key=f"scene-{i:03d}",
                content=text.format(i=i, label=label),
                input_kind="PlainText",
            )
            for i in range(1, scenes + 1)
        ],
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa",
            talking_avatar_style="casual-sitting",
            video_codec=VideoCodec.H264,
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        cache_dir=str(cache_dir),
        poll_interval_s=poll_interval_s,
        timeout_s=timeout_s,
        max_resubmits=max_resubmits,
    )


def _progress_writer(path: Path) -> Any:
    lock = threading.Lock()
    fh = path.open("a", buffering=1, encoding="utf-8")

    def listener(event: Any) -> None:
        line = json.dumps({"t": time.time(), "stage": event.stage, "item": event.item})
        with lock:
            fh.write(line + "\n")
            fh.flush()

    return listener


def main(argv: list[str] | None = None) -> int:
    """Run the flow once; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--scenes", required=True, type=int)
    parser.add_argument("--progress", required=True, type=Path)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--rpm", type=float, default=6000.0)
    parser.add_argument("--rate-limit-name", default="avatarpipe-crash-tests")
    args = parser.parse_args(argv)

    from avatarpipe import progress
    from flows.connections import SpeechTarget
    from flows.synthesize import synthesize

    progress.subscribe(_progress_writer(args.progress))
    request = build_request(
        args.label, args.scenes, args.cache, poll_interval_s=args.poll, timeout_s=args.timeout
    )
    target = SpeechTarget(
        endpoint=args.endpoint,
        backend="emulator",
        rate_limit_name=args.rate_limit_name,
        requests_per_minute=args.rpm,
    )
    started = time.monotonic()
    try:
        outcome = synthesize(request, target)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    data = outcome.model_dump(mode="json")
    data["wall_s"] = time.monotonic() - started
    tmp = args.result.with_name(args.result.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
