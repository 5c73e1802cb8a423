"""Hostile input through the real `avatarpipe` command (a child process, as a user meets it).

Each case must exit 2 with one ``error:`` line and no traceback, before anything is paid for
(the embedded emulator never starts, so no job can be created). The hostile templates must stop
on a render limit with the process tree's peak memory (measured) under 1 GB.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

AVATARPIPE = str(Path(sys.executable).parent / "avatarpipe")
GB_KB = 1024 * 1024
SPEAK = (
    '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">'
    '<voice name="{{ voice.name }}">'
)
HOSTILE = {
    "nested-range-loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        r"rendering took longer than 3 s \(the limit per scene\)",
    ),
    "three-billion-x": (
        "{{ 'x' * 3000000000 }}",
        r"'\*' would build a value of 3,000,000,000 characters; the limit is 10,000,000",
    ),
}


@dataclass
class Ran:
    """What one `avatarpipe` process did."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_tree_kb: int


def _tree_rss_kb(root: int) -> int:
    """VmRSS of ``root`` and all its descendants, in KB (0 for processes already gone)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields.get("PPid", "0").strip())
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree)


def _avatarpipe(args: list[str], cwd: Path, **env: str) -> Ran:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AVATARPIPE_")}
    environ.update(env, PREFECT_HOME=str(cwd / ".prefect"), COLUMNS="300")
    started = time.monotonic()
    proc = subprocess.Popen(
        [AVATARPIPE, *args],
        cwd=cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    try:
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kb(proc.pid))
            if time.monotonic() - started > 60:
                pytest.fail(f"avatarpipe {args} still running after 60 s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    return Ran(proc.returncode, out, err, time.monotonic() - started, peak)


def _one_error(ran: Ran, pattern: str) -> str:
    assert "Traceback" not in ran.stdout + ran.stderr, ran.stderr
    assert ran.code == 2, (ran.code, ran.stderr)
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "embedded Speech emulator" not in ran.stdout + ran.stderr  # nothing was started
    return lines[0]


def _script(folder: Path, **extra: object) -> Path:
    data = {
        "title": "Hostile input",
        "avatar": {"character": "lisa", "style": "casual-sitting"},
        "voice": {"name": "en-US-AvaMultilingualNeural"},
        "scenes": [{"text": "Hello there."}],
        **extra,
    }
    path = folder / "talk.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_template_stops_on_a_limit_with_one_line_under_1_gb(
    tmp_path: Path, case: str, command: str
) -> None:
    body, limit = HOSTILE[case]
    template = tmp_path / "bomb.xml.j2"
    template.write_text(SPEAK + body + "{{ scene.text }}</voice></speak>", encoding="utf-8")
    script = _script(tmp_path, template="bomb.xml.j2")
    args = [command, str(script)] + (["--out", str(tmp_path / "out")] if command == "run" else [])

    ran = _avatarpipe(args, tmp_path)

    line = _one_error(ran, limit)
    assert f"SSML template {template} stopped: " in line and "scenes[0]" in line
    assert ran.peak_tree_kb < GB_KB, f"process tree peaked at {ran.peak_tree_kb} KB"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < GB_KB
    assert not (tmp_path / "out").exists()  # a run fails before it writes anything
    print(
        f"\n[hostile] {case} {command}: exit {ran.code}, {ran.seconds:.2f} s, "
        f"peak tree {ran.peak_tree_kb / 1024:.0f} MB"
    )


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "inf", "finite number"),
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "nan", "finite number"),
        ("AVATARPIPE_POLL_INTERVAL_S", "inf", "finite number"),
        ("AVATARPIPE_POLL_INTERVAL_S", "86400", "less than or equal to 600"),
        ("AVATARPIPE_WAIT_TIMEOUT_S", "1e12", "less than or equal to 172800"),
    ],
)
def test_a_non_finite_or_absurd_setting_is_refused_at_start(
    tmp_path: Path, name: str, value: str, reason: str
) -> None:
    script = _script(tmp_path)
    ran = _avatarpipe(
        ["run", str(script), "--out", str(tmp_path / "out")], tmp_path, **{name: value}
    )
    _one_error(ran, rf"^error: {name}: .*{reason}")
    print(f"\n[setting] {name}={value}: exit {ran.code}, {ran.seconds:.2f} s")


def _output_roots(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    roots = [
        (a_file, "is a file, not a folder"),
        (a_file / "below", "cannot be created"),
        (Path("/proc/avatarpipe-out"), "cannot be created"),
        (Path("/proc/self"), "is not writable"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        roots.append((locked, "is not writable"))
    return roots


def test_an_unusable_output_root_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    script = _script(tmp_path)
    for i, (root, reason) in enumerate(_output_roots(tmp_path)):
        if i % 2:  # half through the variable, half through the option
            ran = _avatarpipe(["run", str(script)], tmp_path, AVATARPIPE_OUTPUT_DIR=str(root))
        else:
            ran = _avatarpipe(["run", str(script), "--out", str(root)], tmp_path)
        line = _one_error(ran, re.escape(f"AVATARPIPE_OUTPUT_DIR (or --out): {root} {reason}"))
        print(f"\n[output root] {root}: exit {ran.code}, {ran.seconds:.2f} s: {line}")


def test_the_flow_checks_its_output_root_before_the_pre_flight_checks(tmp_path: Path) -> None:
    from avatarpipe.errors import ConfigError
    from flows.connections import SpeechTarget
    from flows.script_to_video import RunOptions, script_to_video

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    # Nothing listens on port 9: any pre-flight request would fail differently.
    target = SpeechTarget(endpoint="http://127.0.0.1:9", backend="emulator")
    with pytest.raises(ConfigError, match="AVATARPIPE_OUTPUT_DIR \\(or --out\\): .* is a file"):
        script_to_video.fn(str(_script(tmp_path)), target, RunOptions(out_dir=str(a_file)))


def test_text_of_only_invisible_characters_is_refused_naming_the_scene(tmp_path: Path) -> None:
    invisible = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u2063 \u3000"
    script = _script(tmp_path, scenes=[{"text": "Fine."}, {"text": invisible}])
    for args in (["validate", str(script)], ["run", str(script), "--out", str(tmp_path / "out")]):
        ran = _avatarpipe(args, tmp_path)
        _one_error(ran, r"talk\.yaml: scenes\[1\]\.text: text is empty \(or only invisible")
    assert not (tmp_path / "out").exists()
