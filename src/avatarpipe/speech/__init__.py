"""Azure AI Speech REST clients: batch avatar synthesis and custom voice.

One :class:`Pipeline` (auth, retries, rate budget, error mapping, paging, streaming) is shared
by :class:`BatchAvatarClient` and :class:`CustomVoiceClient`; build them from the settings with
:func:`avatarpipe.connect.open_speech`.
"""

from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.custom_voice import CustomVoiceClient
from avatarpipe.speech.pipeline import Pipeline
from avatarpipe.speech.ratelimit import RateBudget, TokenBucket, UnlimitedBudget
from avatarpipe.speech.retry import RetryPolicy

__all__ = [
    "BatchAvatarClient",
    "CustomVoiceClient",
    "Pipeline",
    "RateBudget",
    "RetryPolicy",
    "TokenBucket",
    "UnlimitedBudget",
]
