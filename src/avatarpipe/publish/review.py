"""The review page: ``index.html`` in a run folder, to watch a run's videos from the folder itself.

Every output of the run is shown in a player (``<video controls>``) with its poster, its captions
(a ``<track>`` for each WebVTT file beside it, inlined: a browser loads no track from a page
opened from disk), its duration, size and SHA-256 checksum, and the
run's billed cost, all read from the manifest. The page only uses relative links and inline
CSS (no script, no external asset), so it works opened straight from disk (``file://``), copied
elsewhere with its folder, or served from the blob container. Every value is HTML-escaped
(Jinja2 autoescape; links percent-encoded).

A bulk run (one script per CSV row) also gets one page listing every row's videos:
``<out>/<run-id>.html``, linking to each row's own page.

:func:`write_review_page` writes into a staged run folder, before it is committed, so the page
appears atomically with the rest of the folder; :func:`write_bulk_page` writes through a
temporary file renamed into place.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, select_autoescape

from avatarpipe.errors import StorageError

__all__ = ["REVIEW_PAGE", "bulk_page_path", "render_review", "write_bulk_page", "write_review_page"]

REVIEW_PAGE = "index.html"
"""The review page's name in a run folder."""
_MAX_INLINE_TRACK = 1_000_000

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; background: #fafafa; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
.meta { color: #555; margin: 0 0 1rem; }
.videos { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px;
         padding: .75rem; max-width: 100%; }
video { display: block; max-width: 100%; max-height: 60vh; background: #000; }
figcaption { margin-top: .5rem; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .8rem; margin: .4rem 0 0; }
dt { color: #555; }
dd { margin: 0; }
code { font-size: 12px; word-break: break-all; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ subtitle }}</p>
{% for run in runs %}
<section class="run" id="{{ run.slug }}">
{% if runs | length > 1 %}<h2><a href="{{ run.page }}">{{ run.title }}</a></h2>
<p class="meta">{{ run.summary }}</p>{% endif %}
<div class="videos">
{% for video in run.videos %}
<figure class="video">
<video controls preload="metadata" src="{{ video.src }}"
{%- if video.poster %} poster="{{ video.poster }}"{% endif %}
 data-duration="{{ video.duration_s }}">
{%- for track in video.tracks %}
<track kind="captions" src="{{ track.src }}" srclang="{{ track.lang }}" label="{{ track.label }}"
{%- if loop.first %} default{% endif %}>
{%- endfor %}
Your browser cannot play this video: <a href="{{ video.src }}">download {{ video.name }}</a>.
</video>
<figcaption>
<a href="{{ video.src }}">{{ video.name }}</a>
<dl>
<dt>duration</dt><dd>{{ video.duration }}</dd>
<dt>format</dt><dd>{{ video.format }}</dd>
<dt>size</dt><dd>{{ video.size }}</dd>
<dt>sha256</dt><dd><code>{{ video.sha256 }}</code></dd>
{%- if video.poster %}
<dt>poster</dt><dd><a href="{{ video.poster }}">{{ video.poster_name }}</a></dd>
{%- endif %}
{%- for track in video.tracks %}
<dt>captions</dt><dd><a href="{{ track.href }}">{{ track.name }}</a></dd>
{%- endfor %}
</dl>
</figcaption>
</figure>
{% endfor %}
</div>
</section>
{% endfor %}
</body>
</html>
"""

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_TEMPLATE = _ENV.from_string(_PAGE)


def _href(prefix: str, name: str) -> str:
    """A relative, percent-encoded link to ``name`` inside the folder ``prefix``."""
    path = PurePosixPath(prefix, name) if prefix else PurePosixPath(name)
    return quote(str(path), safe="/")


def _track_src(path: Path, href: str) -> str:
    """The captions inlined as a ``data:`` URL (a browser refuses a ``file://`` track otherwise).

    Chromium loads a ``<track>`` only from the page's own origin, and a page opened from disk
    has none; the captions file itself stays beside the video (linked for download). A file
    over :data:`_MAX_INLINE_TRACK` bytes is linked instead.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return href
    if len(data) > _MAX_INLINE_TRACK:
        return href
    return "data:text/vtt;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}" if minutes else f"{secs:.1f} s"


def _size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"  # pragma: no cover - the loop always returns


def _cost(manifest: Mapping[str, Any]) -> str:
    billing = manifest.get("billing") or {}
    parts = []
    if billing.get("cost_usd") is not None:
        parts.append(f"${float(billing['cost_usd']):.2f} billed")
        if billing.get("avatar_seconds") is not None:
            parts[-1] += f" ({billing['avatar_seconds']} avatar seconds)"
    if billing.get("estimated_cost_usd") is not None:
        parts.append(f"${float(billing['estimated_cost_usd']):.2f} estimated")
    return ", ".join(parts) or "cost not recorded"


def _run(manifest: Mapping[str, Any], folder: Path, prefix: str) -> dict[str, Any]:
    """What the page shows of one run folder (its files linked relative to the page)."""
    videos = []
    for output in manifest.get("outputs") or []:
        name = str(output.get("path", ""))
        if not name:
            continue
        stem = PurePosixPath(name).stem
        named = [
            *(output.get("subtitles") or []),
            *(
                a.get("path")
                for a in output.get("assets") or []
                if a.get("role") == "captions (vtt)"
            ),
        ]
        # Only files of the run folder itself (a plain name), never a path elsewhere.
        vtts = list(
            dict.fromkeys(str(s) for s in named if str(s).endswith(".vtt") and "/" not in str(s))
        )
        if not vtts and (folder / f"{stem}.vtt").is_file():
            vtts = [f"{stem}.vtt"]
        poster = output.get("thumbnail")
        video = output.get("video") or {}
        fmt = " ".join(
            str(part)
            for part in (
                video.get("codec"),
                f"{video['width']}x{video['height']}" if video.get("width") else None,
                (output.get("audio") or {}).get("codec"),
            )
            if part
        )
        duration = float(output.get("duration_s") or 0.0)
        videos.append(
            {
                "name": name,
                "src": _href(prefix, name),
                "poster": _href(prefix, str(poster)) if poster else "",
                "poster_name": str(poster or ""),
                "tracks": [
                    {
                        "src": _track_src(folder / vtt, _href(prefix, vtt)),
                        "href": _href(prefix, vtt),
                        "name": vtt,
                        "lang": str(manifest.get("language") or "en"),
                        "label": "Captions",
                    }
                    for vtt in vtts
                    if (folder / vtt).is_file()
                ],
                "duration": _duration(duration),
                "duration_s": f"{duration:.3f}",
                "format": fmt or PurePosixPath(name).suffix.lstrip("."),
                "size": _size(float(output.get("size_bytes") or 0)),
                "sha256": str(output.get("sha256", "")),
            }
        )
    count = len(videos)
    return {
        "slug": str(manifest.get("slug", "")),
        "title": str(manifest.get("title") or manifest.get("slug") or "run"),
        "page": _href(prefix, REVIEW_PAGE),
        "summary": f"{count} video{'s' * (count != 1)}; {_cost(manifest)}",
        "videos": videos,
    }


def render_review(runs: Sequence[tuple[Mapping[str, Any], Path, str]], title: str) -> str:
    """The review page's HTML for one or more run folders.

    Args:
        runs: Each run's manifest, its folder on disk (to find captions) and its folder relative
            to the page (``""`` for the page's own folder).
        title: The page's heading.

    Returns:
        The page (UTF-8 text).
    """
    shown = [_run(manifest, folder, prefix) for manifest, folder, prefix in runs]
    first = runs[0][0] if runs else {}
    if len(shown) == 1:
        subtitle = f"run {first.get('run_id', '')}: {shown[0]['summary']}"
    else:
        videos = sum(len(r["videos"]) for r in shown)
        subtitle = f"run {first.get('run_id', '')}: {len(shown)} rows, {videos} videos"
    return _TEMPLATE.render(title=title, subtitle=subtitle, runs=shown)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: {exc}") from exc


def write_review_page(folder: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``index.html`` into a (staged) run folder.

    Args:
        folder: The run folder holding the outputs the manifest lists.
        manifest: The run's manifest.

    Returns:
        The page's path.

    Raises:
        StorageError: The page could not be written.
    """
    page = folder / REVIEW_PAGE
    _write(page, render_review([(manifest, folder, "")], str(manifest.get("title") or "run")))
    return page


def bulk_page_path(out_dir: Path, run_id: str) -> Path:
    """Where a bulk run's page goes: ``<out>/<run-id>.html``."""
    return out_dir / f"{run_id}.html"


def write_bulk_page(out_dir: Path, run_id: str, folders: Sequence[Path], title: str) -> Path:
    """Write one page listing every row of a bulk run (each row's folder is already published).

    Args:
        out_dir: The output root; the rows' folders are ``<out>/<slug>/<run-id>/``.
        run_id: The run id.
        folders: The rows' published folders, in row order.
        title: The page's heading.

    Returns:
        The page's path.

    Raises:
        StorageError: A manifest could not be read or the page could not be written.
    """
    runs = []
    for folder in folders:
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StorageError(f"{folder / 'manifest.json'}: {exc}") from exc
        prefix = os.path.relpath(folder, out_dir).replace(os.sep, "/")
        runs.append((manifest, folder, prefix))
    page = bulk_page_path(out_dir, run_id)
    _write(page, render_review(runs, title))
    return page
