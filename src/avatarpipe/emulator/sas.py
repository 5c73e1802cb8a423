"""Signed, expiring result URLs (the emulator's stand-in for Azure Storage SAS links).

A URL is ``{base}/results/batchsynthesis-output/{resource hex}/{job id}/{file}?sv=..&sr=b&sp=r
&se=<unix expiry>&sig=<HMAC-SHA256>``; the signing key lives in the store, so URLs stay valid
across a restart of the emulator. The signature covers the job's result folder, not one file,
so the files the job wrote beside its video (``0001.vtt`` for ``subtitleType: external_file``,
``0001.word.json``) are read with the video URL's query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, urlencode

from avatarpipe.emulator.core import ResourceCore, iso
from avatarpipe.emulator.store import Job

__all__ = ["RESULT_CONTAINER", "ResultUrls"]

RESULT_CONTAINER = "batchsynthesis-output"


class ResultUrls:
    """Mints and checks result URLs of one emulated resource."""

    def __init__(self, core: ResourceCore) -> None:
        """Create over the resource's core."""
        self.core = core

    def path(self, job_id: str, name: str) -> str:
        """The URL path of one result file."""
        return f"/results/{RESULT_CONTAINER}/{self.core.resource_hex}/{quote(job_id)}/{quote(name)}"

    def _signature(self, path: str, expiry: int) -> str:
        folder = path.rsplit("/", 1)[0]
        mac = hmac.new(self.core.secret, f"{folder}\n{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def mint(self, job: Job, name: str, mint: bool = True) -> str:
        """Mint a signed, expiring URL for one result file (maybe expired: a fault)."""
        core = self.core
        path = self.path(job.id, name)
        expiry = int(core.now() + core.config.result_url_ttl_s)
        if mint and core.faults.url_expired():
            expiry = int(core.now()) - 1
            core.store.bump("fault.expired_url")
        query = urlencode(
            {
                "sv": "2023-11-03",
                "sr": "b",
                "sp": "r",
                "se": str(expiry),
                "sig": self._signature(path, expiry),
            }
        )
        return f"{core.base_url}{path}?{query}"

    def problem(self, path: str, se: str | None, sig: str | None) -> str | None:
        """Return ``None`` if the URL is valid now, else why not (Azure Storage's words)."""
        if not se or not sig:
            return "Signature fields not well formed."
        try:
            expiry = int(se)
        except ValueError:
            return "Signature fields not well formed."
        if not hmac.compare_digest(self._signature(path, expiry), sig):
            return "Signature did not match."
        if expiry <= self.core.now():
            return f"Signed expiry time [{iso(expiry)}] must be after the current time."
        return None
