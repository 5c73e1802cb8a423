"""Loudness: EBU R128 measurement with ffmpeg's ``ebur128`` filter (true peak on).

The same meter serves pass 1 of normalisation (its values are fed to ``loudnorm`` as
``measured_*`` for a linear gain) and the verification of the result, so the output lands on
the target as ``ebur128`` measures it (``loudnorm``'s own pass-1 meter gates slightly
differently and drifts by up to ~0.7 LU on short clips with silence).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import run_ffmpeg

__all__ = ["Loudness", "measure_loudness", "parse_ebur128"]


@dataclass(frozen=True)
class Loudness:
    """An EBU R128 measurement.

    Attributes:
        integrated_lufs: Integrated loudness (``-inf`` for silence).
        true_peak_dbtp: Maximum true peak.
        lra: Loudness range in LU.
        threshold_lufs: The integrated-loudness gating threshold.
    """

    integrated_lufs: float
    true_peak_dbtp: float
    lra: float
    threshold_lufs: float = -70.0

    def as_dict(self) -> dict[str, float | None]:
        """Return a JSON-safe dict (``None`` for infinities)."""
        return {k: (v if math.isfinite(v) else None) for k, v in self.__dict__.items()}


def _num(text: str) -> float:
    t = text.strip().lower()
    if t in ("-inf", "inf", "+inf", "nan"):
        return -math.inf if t.startswith("-") or t == "nan" else math.inf
    return float(t)


_SUMMARY_I = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(?P<v>-?[\d.]+|-?inf)\s*LUFS")
_SUMMARY_TH = re.compile(
    r"Integrated loudness:\s*\n.*\n\s*Threshold:\s*(?P<v>-?[\d.]+|-?inf)\s*LUFS"
)
_SUMMARY_LRA = re.compile(r"Loudness range:\s*\n\s*LRA:\s*(?P<v>-?[\d.]+|-?inf)\s*LU")
_SUMMARY_TP = re.compile(r"True peak:\s*\n\s*Peak:\s*(?P<v>-?[\d.]+|-?inf)\s*dBFS")


def parse_ebur128(log: str) -> Loudness:
    """Parse the summary ``ebur128=peak=true`` prints at the end of a run.

    Args:
        log: ffmpeg's stderr.

    Returns:
        The measurement.

    Raises:
        MediaError: No summary in the log.
    """
    summary = log[log.rfind("Summary:") :] if "Summary:" in log else ""
    m_i, m_lra, m_tp = (r.search(summary) for r in (_SUMMARY_I, _SUMMARY_LRA, _SUMMARY_TP))
    if not (m_i and m_lra and m_tp):
        raise MediaError("ebur128 printed no loudness summary")
    m_th = _SUMMARY_TH.search(summary)
    threshold = _num(m_th["v"]) if m_th else -70.0
    return Loudness(_num(m_i["v"]), _num(m_tp["v"]), _num(m_lra["v"]), threshold)


def measure_loudness(path: str | Path, *, timeout: float | None = None) -> Loudness:
    """Measure a file's first audio stream with ``ebur128`` (true peak on).

    Args:
        path: A media file with audio.
        timeout: Seconds before ffmpeg is killed.

    Returns:
        Integrated loudness, true peak and loudness range.

    Raises:
        MediaError: The file is missing, has no audio, or ffmpeg fails.
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    log = run_ffmpeg(
        [
            "-v", "info", "-i", str(p), "-map", "0:a:0",
            "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-",
        ],
        what=f"measure loudness of {p.name}",
        timeout=timeout,
    )  # fmt: skip
    return parse_ebur128(log)
