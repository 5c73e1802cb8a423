"""Azure AI Speech REST client: batch avatar synthesis and custom voice endpoints.

``SpeechClient`` speaks both APIs over an injected ``httpx.Client`` with retries, a rate budget
and the error tree of :mod:`avatarpipe.errors`; ``SynthesisPoller`` follows one job; ``download``
streams a result to disk atomically.
"""

from avatarpipe.speech.client import SpeechClient
from avatarpipe.speech.download import download
from avatarpipe.speech.polling import SynthesisPoller
from avatarpipe.speech.ratelimit import RateBudget, TokenBucket, UnlimitedBudget
from avatarpipe.speech.retry import RetryPolicy

__all__ = [
    "RateBudget",
    "RetryPolicy",
    "SpeechClient",
    "SynthesisPoller",
    "TokenBucket",
    "UnlimitedBudget",
    "download",
]
