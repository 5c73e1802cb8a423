"""Speech from eSpeak NG (the ``espeakng-loader`` wheel, driven through ctypes).

eSpeak runs in synchronous mode: ``espeak_Synth`` returns when the text is spoken, after calling
our callback with audio chunks and events (words, sentences, phonemes). Audio streams straight to
a 16-bit mono WAV file, so memory does not grow with the length of the speech; the events become
word, sentence and phoneme timings.

The library keeps global state and is not thread-safe: every call goes through one lock.
"""

from __future__ import annotations

import ctypes
import re
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avatarpipe.emulator.render.ssml import Bookmark, Pause, Piece, Say
from avatarpipe.errors import MediaError

__all__ = [
    "FPS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "MarkTiming",
    "PhonemeTiming",
    "SentenceTiming",
    "SpeechResult",
    "WordTiming",
    "espeak_voice_for",
    "synthesize",
]

SAMPLE_RATE = 22050
FPS = 25
FRAME_SAMPLES = SAMPLE_RATE // FPS  # 882: the audio is padded to whole video frames
TAIL_MS = 200  # silence after the last word

# espeak_AUDIO_OUTPUT, options, flags, event types and parameters from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EV_LIST_TERMINATED = 0
_EV_WORD = 1
_EV_SENTENCE = 2
_EV_MARK = 3
_EV_END = 5
_EV_PHONEME = 7
_P_RATE = 1
_P_VOLUME = 2
_P_PITCH = 3

_DEFAULT_RATE_WPM = 175
_DEFAULT_PITCH = 50
_DEFAULT_VOLUME = 100

# Azure locale -> eSpeak voice, where the plain lower-cased locale or language is not a voice.
_LOCALE_ALIASES = {
    "en-gb": "en",
    "en-au": "en",
    "en-ie": "en",
    "en-in": "en",
    "zh-cn": "cmn",
    "zh-tw": "cmn",
    "zh-hk": "yue",
    "zh": "cmn",
    "es-mx": "es-419",
    "es-us": "es-419",
    "pt-pt": "pt",
    "nb-no": "nb",
    "no": "nb",
    "fil-ph": "en-us",
}
# First names of common Azure female voices: these get eSpeak's female variant.
_FEMALE_NAMES = frozenset(
    (
        "ava",
        "emma",
        "jenny",
        "aria",
        "sara",
        "michelle",
        "ana",
        "amber",
        "ashley",
        "cora",
        "elizabeth",
        "jane",
        "monica",
        "nancy",
        "libby",
        "sonia",
        "maisie",
        "abbie",
        "bella",
        "hollie",
        "natasha",
        "annette",
        "carly",
        "elsie",
        "freya",
        "joanne",
        "kim",
        "tina",
        "katja",
        "amala",
        "elke",
        "gisela",
        "klarissa",
        "louisa",
        "maja",
        "tanja",
        "denise",
        "brigitte",
        "celeste",
        "coralie",
        "eloise",
        "jacqueline",
        "josephine",
        "yvette",
        "elvira",
        "abril",
        "estrella",
        "irene",
        "laia",
        "lia",
        "triana",
        "vera",
        "xiaoxiao",
        "xiaoyi",
        "xiaochen",
        "xiaohan",
        "xiaomeng",
        "xiaomo",
        "xiaoqiu",
        "xiaorui",
        "xiaoshuang",
        "xiaoxuan",
        "xiaoyan",
        "xiaoyou",
        "xiaozhen",
        "nanami",
        "aoi",
        "mayu",
        "shiori",
        "sunhi",
        "jiwoo",
        "isabella",
        "elsa",
        "fiona",
        "dalia",
        "francisca",
        "hsiaochen",
        "hsiaoyu",
        "hiugaai",
        "hiumaan",
        "seraphina",
        "vivienne",
    )
)


class _Ev(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [
            ("number", ctypes.c_int),
            ("name", ctypes.c_char_p),
            ("string", ctypes.c_char * 8),
        ]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Ev)
)


@dataclass(frozen=True)
class WordTiming:
    """One spoken word.

    Attributes:
        text: The word as written in the input (surrounding punctuation removed).
        offset_ms: When it starts in the audio.
        duration_ms: How long it is spoken.
        sentence: Index of the sentence it belongs to.
        display: The input text from the previous word's end up to this word's end
            (punctuation and spacing kept), for subtitles.
    """

    text: str
    offset_ms: int
    duration_ms: int
    sentence: int
    display: str = ""


@dataclass(frozen=True)
class SentenceTiming:
    """One spoken sentence.

    Attributes:
        text: The sentence as written in the input.
        offset_ms: When its first word starts.
        duration_ms: Until its last word ends.
    """

    text: str
    offset_ms: int
    duration_ms: int


@dataclass(frozen=True)
class PhonemeTiming:
    """One phoneme (eSpeak's mnemonic, stress marks removed), or ``_`` for silence.

    Attributes:
        start_ms: When it starts.
        name: The phoneme mnemonic.
    """

    start_ms: int
    name: str


@dataclass(frozen=True)
class MarkTiming:
    """A bookmark reached in the speech.

    Attributes:
        name: The mark.
        offset_ms: Where it falls in the audio.
    """

    name: str
    offset_ms: int


@dataclass
class SpeechResult:
    """A synthesized input.

    Attributes:
        wav: The WAV file (22050 Hz, mono, 16-bit), padded to whole 25 fps frames.
        samples: Its length in samples.
        words: Word timings, in order.
        sentences: Sentence timings, in order.
        phonemes: Phoneme timings, in order (silences included as ``_``).
        marks: Bookmarks, in order.
        characters: Characters of spoken text (what Azure bills).
    """

    wav: Path
    samples: int
    words: list[WordTiming] = field(default_factory=list)
    sentences: list[SentenceTiming] = field(default_factory=list)
    phonemes: list[PhonemeTiming] = field(default_factory=list)
    marks: list[MarkTiming] = field(default_factory=list)
    characters: int = 0

    @property
    def duration_ms(self) -> int:
        """The audio's duration in whole milliseconds (a multiple of 40)."""
        return self.samples * 1000 // SAMPLE_RATE

    @property
    def frames(self) -> int:
        """The number of 25 fps video frames that cover the audio."""
        return self.samples // FRAME_SAMPLES


_LOCK = threading.Lock()


class _Engine:
    """The loaded library and its one callback; use only while holding ``_LOCK``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path()
        except Exception as exc:
            raise MediaError(f"eSpeak NG could not be loaded from espeakng-loader: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            data.encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if rate != SAMPLE_RATE:
            raise MediaError(f"eSpeak NG failed to initialise (returned {rate})")
        self.lib = lib
        self.sink: _Sink | None = None
        self.voice: str | None = None
        self._callback = _Callback(self._on_synth)  # kept alive for the library's sake
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: object) -> int:
        sink = self.sink
        if sink is None:
            return 1
        if n > 0 and wav:
            sink.write(ctypes.string_at(wav, n * 2), n)
        evs = events  # a POINTER(_Ev); iterate until LIST_TERMINATED
        i = 0
        while True:
            ev = evs[i]  # type: ignore[index]
            if ev.type == _EV_LIST_TERMINATED:
                break
            sink.event(ev)
            i += 1
        return 0

    def set_voice(self, name: str) -> bool:
        if name == self.voice:
            return True
        if self.lib.espeak_SetVoiceByName(name.encode()) == 0:
            self.voice = name
            return True
        return False


_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def espeak_voice_for(voice: str | None, locale: str) -> list[str]:
    """Return eSpeak voice names to try, best first, for an Azure voice and locale.

    Args:
        voice: The Azure voice name (``en-US-AvaMultilingualNeural``), when known.
        locale: The locale to speak in (``en-US``).

    Returns:
        Candidate eSpeak voice names, ending with ``en-us``; female Azure voices get the
        ``+f3`` variant.
    """
    loc = locale.lower()
    lang = loc.split("-")[0]
    bases = [_LOCALE_ALIASES.get(loc, loc), loc, _LOCALE_ALIASES.get(lang, lang), "en-us"]
    variant = ""
    if voice:
        m = re.match(
            r"^(?:[a-zA-Z]{2,3}-[a-zA-Z0-9]{2,4}-)?([A-Za-z]+?)(?:Multilingual|Neural|$)", voice
        )
        if m and m[1].lower() in _FEMALE_NAMES:
            variant = "+f3"
    out: list[str] = []
    for base in bases:
        for name in (base + variant, base) if variant else (base,):
            if name not in out:
                out.append(name)
    return out


class _Sink:
    """Collects one input's audio (into the WAV file) and events (into timings)."""

    def __init__(self, wav: wave.Wave_write) -> None:
        self.wav = wav
        self.samples = 0
        self.base_ms = 0.0
        self.seg_index = 0
        self.raw_words: list[tuple[int, int, int, int]] = []  # seg, text pos, len, ms
        self.raw_sentences: list[tuple[int, int, int]] = []  # seg, text pos, ms
        self.phonemes: list[PhonemeTiming] = []

    def write(self, data: bytes, n: int) -> None:
        self.wav.writeframesraw(data)
        self.samples += n

    def now_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    def event(self, ev: _Ev) -> None:
        at = int(round(self.base_ms + ev.audio_position))
        if ev.type == _EV_WORD:
            self.raw_words.append((self.seg_index, ev.text_position, ev.length, at))
        elif ev.type == _EV_SENTENCE:
            self.raw_sentences.append((self.seg_index, ev.text_position, at))
        elif ev.type == _EV_PHONEME:
            raw = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            name = raw.replace("'", "").replace(",", "")
            if name.startswith("_"):
                name = "_"
            if name:
                self.phonemes.append(PhonemeTiming(at, name))
        elif ev.type == _EV_END:
            self.phonemes.append(PhonemeTiming(at, "_"))

    def silence(self, n: int) -> None:
        if n > 0:
            self.write(b"\0\0" * n, n)


_ENDS = re.compile(r"[.!?。！？]['\"”’)\]]*$")
_WORD_CHARS = re.compile(r"\w", re.UNICODE)
_STRIP = "\"'“”‘’«»()[]{}<>.,;:!?¡¿…—–-*_/\\|"


def _tokens(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated tokens of ``text`` as (start, end) character spans."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def _build_words(
    texts: Sequence[str],
    raw_words: list[tuple[int, int, int, int]],
    raw_sentences: list[tuple[int, int, int]],
    phonemes: list[PhonemeTiming],
    seg_end_ms: Sequence[int],
) -> tuple[list[WordTiming], list[SentenceTiming]]:
    # Group eSpeak word events by the input token they fall in ("2024" is spoken as three words
    # but is one word of the input, as Azure reports it).
    grouped: list[tuple[int, int, int, int]] = []  # seg, token start, token end, ms
    for seg, pos, _length, ms in raw_words:
        text = texts[seg]
        start = pos - 1
        for t0, t1 in _tokens(text):
            if t0 <= start < t1:
                if grouped and grouped[-1][0] == seg and grouped[-1][1] == t0:
                    break
                grouped.append((seg, t0, t1, ms))
                break
    # Sentence starts: (segment, character index) from the sentence events.
    sentence_starts = sorted({(seg, pos - 1) for seg, pos, _ms in raw_sentences})
    pauses = [p.start_ms for p in phonemes if p.name == "_"]

    words: list[WordTiming] = []
    spans: list[tuple[int, int, int]] = []  # seg, start char, end char per word
    sentence_of: list[int] = []
    sent_idx = -1
    last_key: tuple[int, int] | None = None
    for i, (seg, t0, t1, ms) in enumerate(grouped):
        token = texts[seg][t0:t1]
        word = token.strip(_STRIP)
        if not _WORD_CHARS.search(token) or not word:
            continue
        next_ms = grouped[i + 1][3] if i + 1 < len(grouped) else seg_end_ms[seg]
        if i + 1 < len(grouped) and grouped[i + 1][0] != seg:
            next_ms = min(next_ms, seg_end_ms[seg])
        end = next_ms
        for p in pauses:  # a pause inside the gap ends the word early
            if ms < p < end:
                end = p
                break
        key = max((s for s in sentence_starts if s <= (seg, t0)), default=None)
        if sent_idx < 0:
            sent_idx = 0
        elif key != last_key:
            # A new synthesis call also starts a "sentence": only count it when the previous
            # word really ended one.
            prev_token = texts[spans[-1][0]][spans[-1][1] : spans[-1][2]] if spans else ""
            if key is None or last_key is None or key[0] == last_key[0] or _ENDS.search(prev_token):
                sent_idx += 1
        last_key = key
        prev_end = spans[-1][2] if spans and spans[-1][0] == seg else 0
        display = texts[seg][prev_end:t1]
        if prev_end == 0 and words:
            display = " " + display.lstrip()
        words.append(WordTiming(word, ms, max(1, end - ms), sent_idx, display))
        spans.append((seg, t0, t1))
        sentence_of.append(sent_idx)

    sentences: list[SentenceTiming] = []
    for s in range(sent_idx + 1):
        idx = [i for i, v in enumerate(sentence_of) if v == s]
        if not idx:
            continue
        first, last = idx[0], idx[-1]
        seg0, c0, _ = spans[first]
        seg1, _, c1 = spans[last]
        if seg0 == seg1:
            text = texts[seg0][c0:c1]
        else:
            parts = [texts[seg0][c0:], *texts[seg0 + 1 : seg1], texts[seg1][:c1]]
            text = " ".join(p.strip() for p in parts if p.strip())
        start = words[first].offset_ms
        end = words[last].offset_ms + words[last].duration_ms
        sentences.append(SentenceTiming(text, start, max(1, end - start)))
    return words, sentences


def synthesize(pieces: Sequence[Piece], wav_path: Path) -> SpeechResult:
    """Speak ``pieces`` into ``wav_path`` and time every word, sentence and phoneme.

    Args:
        pieces: What to say, pauses and bookmarks, in order (see :mod:`.ssml`).
        wav_path: The WAV file to write (22050 Hz mono 16-bit).

    Returns:
        The audio file and its timings; the audio is padded with silence to whole 25 fps frames.

    Raises:
        MediaError: eSpeak could not be loaded or failed to speak.
    """
    texts: list[str] = []
    seg_end_ms: list[int] = []
    marks: list[MarkTiming] = []
    characters = 0
    with _LOCK, wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        engine = _engine()
        sink = _Sink(wav)
        engine.sink = sink
        try:
            for piece in pieces:
                if isinstance(piece, Pause):
                    sink.phonemes.append(PhonemeTiming(sink.now_ms(), "_"))
                    sink.silence(piece.ms * SAMPLE_RATE // 1000)
                elif isinstance(piece, Bookmark):
                    marks.append(MarkTiming(piece.name, sink.now_ms()))
                elif isinstance(piece, Say):
                    _say(engine, sink, piece, len(texts))
                    texts.append(piece.text)
                    seg_end_ms.append(sink.now_ms())
                    characters += len(piece.text)
            # eSpeak stops right after the last phoneme: end on a short silence, mouth closed.
            sink.phonemes.append(PhonemeTiming(sink.now_ms(), "_"))
            sink.silence(TAIL_MS * SAMPLE_RATE // 1000)
            pad = (-sink.samples) % FRAME_SAMPLES
            sink.silence(pad)
        finally:
            engine.sink = None
    words, sentences = _build_words(
        texts, sink.raw_words, sink.raw_sentences, sink.phonemes, seg_end_ms
    )
    return SpeechResult(
        wav=wav_path,
        samples=sink.samples,
        words=words,
        sentences=sentences,
        phonemes=sink.phonemes,
        marks=marks,
        characters=characters,
    )


def _say(engine: _Engine, sink: _Sink, piece: Say, index: int) -> None:
    for name in espeak_voice_for(piece.voice, piece.locale):
        if engine.set_voice(name):
            break
    else:  # pragma: no cover - en-us always exists in the wheel's data
        raise MediaError(f"eSpeak NG has no voice for {piece.locale}")
    lib = engine.lib
    p = piece.prosody
    lib.espeak_SetParameter(_P_RATE, int(max(80, min(450, _DEFAULT_RATE_WPM * p.rate))), 0)
    lib.espeak_SetParameter(_P_PITCH, int(max(0, min(99, _DEFAULT_PITCH * p.pitch))), 0)
    lib.espeak_SetParameter(_P_VOLUME, int(max(0, min(200, _DEFAULT_VOLUME * p.volume / 100))), 0)
    sink.seg_index = index
    sink.base_ms = sink.samples * 1000.0 / SAMPLE_RATE
    data = piece.text.encode("utf-8") + b"\0"
    err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if err != 0:
        raise MediaError(f"eSpeak NG failed to speak (error {err})")
