"""What a run would submit and what it would cost, before anything is paid for.

:func:`estimate_run` plans exactly as a run does (the same SSML, the same synthesis requests,
:func:`avatarpipe.batch.run.plan_request` for the jobs and their ids), then prices every job:

* **Video seconds** come from the text (:func:`spoken_estimate`): the spoken syllables at a
  speaking rate (``AVATARPIPE_SPEAKING_RATE_WPM`` words a minute, counted as 1.4 syllables a
  word, scaled by any SSML ``<prosody rate>``), a short gap per sentence, every ``<break>`` and
  the scene pauses, and a fixed tail per input. The constants were fitted against the
  emulator's speech engine; ``docs/operating.md`` records the measurement.
* **Billed seconds**: the service bills whole seconds per job, rounded down, so each job's
  estimate is its video seconds less half a second (the expected loss to rounding).
* **Cost**: billed minutes at the price per avatar minute (standard or custom avatar). The result
  store is asked as the run asks it: a work whose videos are stored costs nothing, one whose
  last attempt failed goes on from the next attempt id (a permanent failure only with
  ``--retry-failed``).
* **Requests** the run needs at least (a lookup, one create per new job, a polling round, the
  deletes with ``--delete-jobs``) and the wall time the request budget alone implies.

Nothing here calls the service: an estimate is free and works offline.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - our own rendered SSML, parsed before sending
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from avatarpipe.batch.plan import PlannedJob, VideoInput
from avatarpipe.batch.run import plan_request
from avatarpipe.batch.store import ResultStore, open_result_store
from avatarpipe.errors import ConfigError
from avatarpipe.prosody import parse_break_ms, parse_rate
from avatarpipe.scripts.jobs import run_label, scene_inputs, synthesis_requests
from avatarpipe.scripts.model import Script
from avatarpipe.settings import Settings
from avatarpipe.speech.models import InputKind

__all__ = [
    "BILLING_ROUNDING_S",
    "SENTENCE_GAP_S",
    "SYLLABLES_PER_WORD",
    "TAIL_S",
    "JobEstimate",
    "Prices",
    "RunEstimate",
    "SpokenEstimate",
    "check_cost_limit",
    "estimate_run",
    "plan_run",
    "estimate_from_settings",
    "spoken_estimate",
    "stored_job_ids",
]

SYLLABLES_PER_WORD = 1.4
"""The syllables of an average English word: a word of the speaking rate."""
SENTENCE_GAP_S = 0.26
"""The pause the voice makes after each sentence."""
TAIL_S = 0.2
"""Silence at the end of every input."""
BILLING_ROUNDING_S = 0.5
"""Expected seconds lost per job to billing in whole seconds, rounded down."""

_TOKEN = re.compile(r"\S+")
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_VOWELS = re.compile(r"[aeiouyàâäéèêëîïôöùûüáíóúæœ]+")
_DIGITS = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_SYMBOL_SYLLABLES = {"%": 2, "$": 2, "€": 2, "£": 2, "&": 1, "+": 1, "@": 1}


# ------------------------------------------------------------------ speech length from text


def _syllables(token: str) -> int:
    """Syllables of one written token (letters by vowel groups, digits as spoken numbers)."""
    count = 0
    for word in _LETTERS.findall(token.lower()):
        groups = len(_VOWELS.findall(word))
        if groups > 1 and word.endswith("e") and not word.endswith(("le", "ee")):
            groups -= 1  # a silent final e
        count += max(1, groups)
    for digits in _DIGITS.findall(token):
        count += max(1, round(1.3 * len(digits)))
    count += sum(_SYMBOL_SYLLABLES.get(ch, 0) for ch in token)
    return count


def _break_s(elem: ET.Element) -> float:
    return parse_break_ms(_attr(elem, "time"), _attr(elem, "strength")) / 1000


def _attr(elem: ET.Element, name: str) -> str | None:
    for key, value in elem.attrib.items():
        if key.rsplit("}", 1)[-1] == name:
            return value
    return None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


@dataclass
class SpokenEstimate:
    """How long one input would speak, and why.

    Attributes:
        words: Spoken words.
        characters: Characters of spoken text (what the service bills voices by).
        syllables: Estimated syllables, each divided by the prosody rate in force.
        sentences: Sentences.
        pause_s: Seconds of ``<break>`` silence.
        seconds: The estimated video length.
    """

    words: int = 0
    characters: int = 0
    syllables: float = 0.0
    sentences: int = 0
    pause_s: float = 0.0
    seconds: float = 0.0
    _text: list[str] = field(default_factory=list, repr=False)

    def add_text(self, text: str, rate: float) -> None:
        """Count a run of spoken text at the prosody ``rate``."""
        tokens = _TOKEN.findall(text)
        if not tokens:
            return
        self.words += sum(1 for t in tokens if _LETTERS.search(t) or _DIGITS.search(t))
        self.syllables += sum(_syllables(t) for t in tokens) / rate
        self._text.append(" ".join(tokens))

    def finish(self, wpm: float) -> SpokenEstimate:
        """Work out ``characters``, ``sentences`` and ``seconds`` at ``wpm`` words a minute."""
        spoken = " ".join(self._text)
        self.characters = len(spoken)
        self.sentences = len(_SENTENCE_END.findall(spoken)) or (1 if self.words else 0)
        per_second = wpm * SYLLABLES_PER_WORD / 60
        self.seconds = round(
            self.syllables / per_second + self.sentences * SENTENCE_GAP_S + self.pause_s + TAIL_S,
            2,
        )
        return self


def _walk(elem: ET.Element, rate: float, out: SpokenEstimate) -> None:
    name = _local(elem.tag)
    if name == "break":
        out.pause_s += _break_s(elem)
    elif name == "prosody":
        rate = parse_rate(_attr(elem, "rate"), rate)
    if name not in ("break", "bookmark") and elem.text:
        out.add_text(elem.text, rate)
    for child in elem:
        _walk(child, rate, out)
        if child.tail:
            out.add_text(child.tail, rate)


def spoken_estimate(content: str, kind: InputKind, *, wpm: float) -> SpokenEstimate:
    """Estimate how long an input speaks, from its text alone.

    Args:
        content: A whole SSML document, or plain text.
        kind: What ``content`` is.
        wpm: The speaking rate in words a minute (``Settings.speaking_rate_wpm``).

    Returns:
        The counts and the estimated seconds.

    Raises:
        ConfigError: The SSML is not well-formed (a rendered script's SSML always is).
    """
    out = SpokenEstimate()
    if kind == InputKind.SSML:
        try:
            root = ET.fromstring(content)  # noqa: S314 - our own rendered, checked SSML
        except ET.ParseError as exc:
            raise ConfigError(f"SSML input is not well-formed: {exc}") from None
        _walk(root, 1.0, out)
    else:
        for paragraph in re.split(r"\r?\n", content):
            out.add_text(paragraph, 1.0)
    return out.finish(wpm)


# ------------------------------------------------------------------ prices and the plan


@dataclass(frozen=True)
class Prices:
    """The price table (USD), from the settings.

    Attributes:
        standard_avatar_per_minute: A minute of batch video with a standard avatar.
        custom_avatar_per_minute: A minute of batch video with a custom avatar.
        custom_avatar_hosting_per_hour: An hour a custom avatar stays deployed.
        custom_voice_hosting_per_hour: An hour a custom neural voice endpoint runs.
    """

    standard_avatar_per_minute: float
    custom_avatar_per_minute: float
    custom_avatar_hosting_per_hour: float
    custom_voice_hosting_per_hour: float

    @classmethod
    def from_settings(cls, conf: Settings) -> Prices:
        """The prices of ``conf`` (``AVATARPIPE_PRICE_*``)."""
        return cls(
            standard_avatar_per_minute=conf.price_standard_avatar_per_minute,
            custom_avatar_per_minute=conf.price_custom_avatar_per_minute,
            custom_avatar_hosting_per_hour=conf.price_custom_avatar_hosting_per_hour,
            custom_voice_hosting_per_hour=conf.price_custom_voice_hosting_per_hour,
        )

    def per_minute(self, customized: bool) -> float:
        """The price of a minute of video with a custom (or standard) avatar."""
        return self.custom_avatar_per_minute if customized else self.standard_avatar_per_minute


@dataclass(frozen=True)
class JobEstimate:
    """One job of the plan.

    Attributes:
        job_id: Its deterministic id (the one the run submits).
        keys: The videos in it (``<slug>/scene-NNN``).
        characters: Characters of spoken text.
        video_s: Estimated seconds of video.
        billed_s: Estimated billed seconds (whole seconds per job, rounded down).
        customized: A custom avatar (priced as such).
        custom_voice: Whether it speaks with a custom neural voice.
        stored: Its videos are already in the result store: the run reuses them, nothing is paid.
        cost_usd: Estimated cost (0 when stored, or when it failed earlier and is not retried).
        note: What the result store said (``new``, ``stored``, ``refetch``: stored once but the
            videos are gone, ``retry``: an earlier attempt failed, ``failed``: failed earlier
            for a permanent reason, not resubmitted without ``--retry-failed``).
    """

    job_id: str
    keys: tuple[str, ...]
    characters: int
    video_s: float
    billed_s: float
    customized: bool
    custom_voice: bool
    stored: bool
    cost_usd: float
    note: str = "new"

    @property
    def submitted(self) -> bool:
        """Whether the run submits (and pays for) this job."""
        return self.note in ("new", "refetch", "retry")


@dataclass(frozen=True)
class RunEstimate:
    """What a run would submit and cost.

    Attributes:
        label: The run's label (part of its job ids).
        jobs: Every planned job, stored ones included.
        inputs: Each video's estimated seconds, by key.
        prices: The price table used.
        requests: The requests the run needs at least.
        requests_per_minute: The request budget.
        budget_wall_s: Seconds the request budget alone takes for ``requests``.
        packed: Whether scenes are packed into multi-input jobs (a blob container is set).
    """

    label: str
    jobs: list[JobEstimate]
    inputs: dict[str, float]
    prices: Prices
    requests: dict[str, int]
    requests_per_minute: float
    budget_wall_s: float
    packed: bool

    @property
    def to_submit(self) -> list[JobEstimate]:
        """The jobs the run submits and pays for (not in the result store)."""
        return [j for j in self.jobs if j.submitted]

    @property
    def video_s(self) -> float:
        """Estimated seconds of video the run pays for."""
        return round(sum(j.video_s for j in self.to_submit), 2)

    @property
    def billed_s(self) -> float:
        """Estimated billed seconds."""
        return round(sum(j.billed_s for j in self.to_submit), 2)

    @property
    def cost_usd(self) -> float:
        """Estimated cost of the run."""
        return round(sum(j.cost_usd for j in self.jobs), 4)

    @property
    def hosting_per_hour_usd(self) -> float:
        """What the custom avatar and voice cost per hour while hosted (billed apart from runs)."""
        avatar = any(j.customized for j in self.jobs)
        voice = any(j.custom_voice for j in self.jobs)
        return round(
            (self.prices.custom_avatar_hosting_per_hour if avatar else 0.0)
            + (self.prices.custom_voice_hosting_per_hour if voice else 0.0),
            4,
        )

    def billing_for(self, prefix: str) -> dict[str, float]:
        """The estimate of the videos whose key starts with ``prefix`` (a script's ``slug/``).

        Stored jobs count too (what their videos were billed is in the manifest as well), and a
        packed job is shared out by its videos' seconds.

        Returns:
            ``estimated_seconds`` (billed), ``estimated_cost_usd`` and ``usd_per_minute``.
        """
        seconds = cost = 0.0
        rate = 0.0
        for job in self.jobs:
            mine = [k for k in job.keys if k.startswith(prefix)]
            if not mine:
                continue
            total = sum(self.inputs[k] for k in job.keys) or 1.0
            share = job.billed_s * sum(self.inputs[k] for k in mine) / total
            rate = self.prices.per_minute(job.customized)
            seconds += share
            cost += share / 60 * rate
        return {
            "estimated_seconds": round(seconds, 2),
            "estimated_cost_usd": round(cost, 4),
            "usd_per_minute": rate,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form (``avatarpipe estimate --json``, the manifest)."""
        return {
            "label": self.label,
            "jobs": [{**asdict(j), "keys": list(j.keys), "inputs": len(j.keys)} for j in self.jobs],
            "to_submit": len(self.to_submit),
            "stored": sum(j.stored for j in self.jobs),
            "video_s": self.video_s,
            "billed_s": self.billed_s,
            "cost_usd": self.cost_usd,
            "hosting_per_hour_usd": self.hosting_per_hour_usd,
            "prices": asdict(self.prices),
            "requests": self.requests,
            "requests_per_minute": self.requests_per_minute,
            "budget_wall_s": self.budget_wall_s,
            "packed": self.packed,
        }


def plan_run(scripts: Sequence[Script], *, pack: bool) -> list[tuple[PlannedJob, bool]]:
    """The jobs a run over ``scripts`` submits, as the run plans them.

    Args:
        scripts: Validated scripts (one, or a bulk CSV's rows).
        pack: Pack scenes into multi-input jobs (a blob container is configured).

    Returns:
        Each planned job with whether its avatar is a custom one.

    Raises:
        ScriptError: A scene's SSML does not render.
        RequestValidationError: An input is over the service's limits.
    """
    per_script = {s.slug: scene_inputs(s) for s in scripts}
    requests = synthesis_requests(scripts, per_script, label=run_label(scripts), pack=pack)
    return [
        (job, bool(request.avatar.customized))
        for request in requests
        for job in plan_request(request, pack=pack)
    ]


def _requests(submit: int, delete_jobs: bool) -> dict[str, int]:
    if not submit:
        return {"lookup": 0, "create": 0, "poll": 0, "delete": 0}
    return {
        "lookup": 1,  # one list page (or one GET) answers for every planned id
        "create": submit,
        "poll": 1,  # at least one round; a long render adds one a round (intervals stretch)
        "delete": submit if delete_jobs else 0,
    }


def _resolve(
    job: PlannedJob, results: ResultStore | None, retry_failed: bool
) -> tuple[PlannedJob, str]:
    """The job a run submits for a planned work, and why (as :class:`SynthesisRun` decides)."""
    record = results.work(job.work_hash) if results is not None else None
    if record is None:
        return job, "new"
    if record.status == "Succeeded":
        at = job.at_attempt(record.attempt)
        stored = results.get(record.job_id) if results is not None else None
        return at, "stored" if stored is not None else "refetch"
    if record.transient or retry_failed:
        return job.at_attempt(record.attempt + 1), "retry"
    return job.at_attempt(record.attempt), "failed"


def estimate_run(
    scripts: Sequence[Script],
    conf: Settings,
    *,
    pack: bool,
    results: ResultStore | None = None,
    delete_jobs: bool = False,
    retry_failed: bool = False,
) -> RunEstimate:
    """Estimate what a run over ``scripts`` would submit and cost (no service call).

    Args:
        scripts: Validated scripts.
        conf: The settings: price table, speaking rate, request budget.
        pack: Pack scenes into multi-input jobs (a blob container is configured).
        results: The result store: works stored there cost nothing, failed ones go on from
            the next attempt id (as the run decides).
        delete_jobs: The run deletes its jobs after download (more requests).
        retry_failed: The run resubmits works that failed for a permanent reason.

    Returns:
        The estimate.

    Raises:
        ScriptError: A scene's SSML does not render.
        RequestValidationError: An input is over the service's limits.
        StorageError: The result store could not be read.
    """
    prices = Prices.from_settings(conf)
    planned = plan_run(scripts, pack=pack)
    inputs: dict[str, float] = {}
    jobs: list[JobEstimate] = []
    for first, customized in planned:
        job, note = _resolve(first, results, retry_failed)
        spoken = [_spoken(item, conf.speaking_rate_wpm) for item in job.inputs]
        for item, est in zip(job.inputs, spoken, strict=True):
            inputs[item.key] = est.seconds
        video_s = round(sum(s.seconds for s in spoken), 2)
        billed_s = round(max(0.0, video_s - BILLING_ROUNDING_S), 2)
        paid = note in ("new", "refetch", "retry")
        jobs.append(
            JobEstimate(
                job_id=job.job_id,
                keys=tuple(i.key for i in job.inputs),
                characters=sum(s.characters for s in spoken),
                video_s=video_s,
                billed_s=billed_s,
                customized=customized,
                custom_voice=bool(job.options.custom_voices),
                stored=note == "stored",
                cost_usd=round(billed_s / 60 * prices.per_minute(customized), 4) if paid else 0.0,
                note=note,
            )
        )
    requests = _requests(sum(1 for j in jobs if j.submitted), delete_jobs)
    total = sum(requests.values())
    return RunEstimate(
        label=run_label(scripts),
        jobs=jobs,
        inputs=inputs,
        prices=prices,
        requests=requests,
        requests_per_minute=conf.requests_per_minute,
        budget_wall_s=round(total * 60 / conf.requests_per_minute, 1),
        packed=pack,
    )


def _spoken(item: VideoInput, wpm: float) -> SpokenEstimate:
    return spoken_estimate(item.content, item.input_kind, wpm=wpm)


def check_cost_limit(estimate: RunEstimate, limit: float | None) -> None:
    """Refuse a run whose estimated cost is above ``limit`` (``AVATARPIPE_MAX_COST_PER_RUN``).

    Args:
        estimate: The run's estimate.
        limit: The most a run may cost in USD; ``None``: no limit.

    Raises:
        ConfigError: The estimate is above the limit (nothing has been submitted).
    """
    if limit is None or estimate.cost_usd <= limit:
        return
    raise ConfigError(
        f"AVATARPIPE_MAX_COST_PER_RUN: this run is estimated at ${estimate.cost_usd:.2f} "
        f"({len(estimate.to_submit)} job(s), {estimate.billed_s:.0f} billed s), above the "
        f"limit of ${limit:.2f}; nothing was submitted. See `avatarpipe estimate`, then raise "
        "the limit or split the run"
    )


def stored_job_ids(conf: Settings) -> set[str]:
    """The ids of the jobs whose videos are verified locally (in the result store).

    Args:
        conf: The settings (the output folder, and the blob container when one is set).

    Returns:
        The job ids.

    Raises:
        ConfigError: A blob setting is malformed.
        StorageError: The store could not be listed.
    """
    from avatarpipe.storage.blob import store_from_settings

    return open_result_store(conf, store_from_settings(conf)).job_ids()


def estimate_from_settings(
    scripts: Sequence[Script],
    conf: Settings,
    *,
    pack: bool = True,
    delete_jobs: bool = False,
    retry_failed: bool = False,
) -> RunEstimate:
    """Estimate a run as it would go with these settings: packing, result store, prices.

    Args:
        scripts: Validated scripts.
        conf: The settings.
        pack: The run may pack scenes (it does when a blob container is configured).
        delete_jobs: The run deletes its jobs after download.
        retry_failed: The run resubmits works that failed for a permanent reason.

    Returns:
        The estimate.

    Raises:
        ConfigError: A blob setting is malformed.
        ScriptError: A scene's SSML does not render.
        RequestValidationError: An input is over the service's limits.
        StorageError: The result store could not be read.
    """
    from avatarpipe.storage.blob import store_from_settings

    blob = store_from_settings(conf)
    return estimate_run(
        scripts,
        conf,
        pack=pack and blob is not None,
        results=open_result_store(conf, blob),
        delete_jobs=delete_jobs,
        retry_failed=retry_failed,
    )
