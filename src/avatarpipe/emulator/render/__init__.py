"""The emulator's real renderer: eSpeak NG speech, a lip-synced 2D presenter, one ffmpeg run.

Use :func:`render_input` (a shared default instance) or an :class:`AvatarRenderer` of your own
(e.g. with its own sprite cache directory); :func:`summary_result` gives one ``summary.json``
entry in the service's shape.
"""

from avatarpipe.emulator.render.renderer import AvatarRenderer, render_input, summary_result

__all__ = ["AvatarRenderer", "render_input", "summary_result"]
