"""Text prompts: ``"sad slow jazz piano, sparse, loud drums"`` -> style, tempo, mode, density,
loudness, instruments and per-instrument controls, with every word accounted for.

A small documented vocabulary of rules, not a learned model: each word (or two-word phrase) of
the prompt either sets something (shown back in :attr:`ParsedPrompt.uses`), is a filler word
(``a``, ``with``, ``and``, ...), or is reported as not understood (:attr:`ParsedPrompt.unknown`);
nothing is ignored silently. A modifier just before an instrument (``loud drums``, ``sparse
bass``) sets that instrument's controls; elsewhere (``sparse, loud drums``: before a comma) it
sets the whole piece's. Two words that set
the same thing to different values (``slow ... fast``) are refused with both named.

The words, and what they set (the numbers are the controls' own units):

- style: any style label of the model (``jazz``, ``rock``, ``folk-celtic`` ...), or the part of
  a label before or after its dash (``celtic``, ``folk``: the first such label).
- tempo: ``very slow`` 60, ``slow`` 76, ``moderate`` 104, ``fast`` 140, ``very fast`` 176 bpm,
  or a number followed by ``bpm``.
- mode: ``sad``, ``dark``, ``melancholic``, ``minor`` -> minor; ``happy``, ``bright``,
  ``cheerful``, ``major`` -> major; a key such as ``in a minor`` or ``in eb major``.
- density (notes per bar): ``very sparse`` 2, ``sparse`` 4, ``busy``/``dense`` 16, ``very dense`` 24.
- loudness (mean velocity): ``very quiet`` 35, ``quiet``/``soft``/``gentle`` 50, ``loud`` 100,
  ``very loud`` 115.
- instruments: see :data:`INSTRUMENTS` (General MIDI programs; ``drums`` is -1).
- chords (a new piece's, a chord a bar, repeated): ``chords`` or ``over`` followed by chord
  symbols (``chords am f c g``, ``over dm7-g7-cmaj7``; :func:`~harmonixr.generation.harmony.parse_chords`),
  up to the first word that is not one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from symusic import Score

from harmonixr.errors import HarmonixrError
from harmonixr.generation.harmony import name, parse_chords
from harmonixr.generation.postprocess import Key, estimate_key, score_to_mean_velocity
from harmonixr.tokens.prompt import TrackControls

TEMPO = {"very slow": 60.0, "slow": 76.0, "moderate": 104.0, "medium": 104.0, "fast": 140.0, "very fast": 176.0,
         "quick": 140.0, "upbeat": 128.0}
MODE = {"sad": "minor", "dark": "minor", "melancholic": "minor", "minor": "minor", "gloomy": "minor",
        "happy": "major", "bright": "major", "cheerful": "major", "major": "major", "joyful": "major"}
DENSITY = {"very sparse": 2.0, "sparse": 4.0, "busy": 16.0, "dense": 16.0, "very dense": 24.0, "very busy": 24.0}
LOUDNESS = {"very quiet": 35.0, "quiet": 50.0, "soft": 50.0, "gentle": 50.0, "loud": 100.0, "very loud": 115.0,
            "powerful": 105.0}
INSTRUMENTS = {"piano": 0, "keys": 4, "electric piano": 4, "organ": 19, "guitar": 24, "acoustic guitar": 25,
               "electric guitar": 27, "bass": 33, "violin": 40, "cello": 42, "strings": 48, "choir": 52,
               "trumpet": 56, "brass": 61, "sax": 65, "saxophone": 65, "flute": 73, "synth": 81, "lead": 81,
               "pad": 89, "drums": -1, "drum": -1, "percussion": -1}
FILLER = {"a", "an", "the", "and", "with", "some", "of", "for", "piece", "song", "tune", "music", "track",
          "part", "in", "on", "very"}
CHORD_WORDS = ("chords", "over")  # the chord symbols that follow are a new piece's chords
PIECE_KINDS = ("density", "loudness")  # what a modifier sets, on the piece or on the instrument after it


class PromptError(HarmonixrError):
    """A prompt that asks for two different values of one thing, or for nothing the rules know."""


@dataclass
class ParsedPrompt:
    """What a prompt asks for (None: not said) and how each word was read."""

    text: str
    style: str | None = None
    tempo: float | None = None
    key: Key | None = None
    mode: str | None = None  # "major" / "minor" (a key's mode, or a mood word)
    density: float | None = None  # notes per bar, the whole piece
    loudness: float | None = None  # mean velocity, the whole piece
    instruments: list[int] = field(default_factory=list)  # GM programs in the order named; -1: drums
    per_instrument: dict[int, dict[str, float]] = field(default_factory=dict)  # program -> {density/loudness: value}
    chords: str | None = None  # a new piece's chords, a chord a bar ("Am F C G")
    uses: list[tuple[str, str]] = field(default_factory=list)  # (words, what they set)
    unknown: list[str] = field(default_factory=list)  # words not understood

    def summary(self) -> str:
        """The parse as people read it: what each word set, and what was not understood."""
        said = "; ".join(f"'{w}' -> {what}" for w, what in self.uses) or "nothing set"
        return said + (f"; not understood: {', '.join(repr(w) for w in self.unknown)}" if self.unknown else "")


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9#♯♭+-]+|[,;.]", text.lower())  # punctuation ends a modifier's reach


class _Reader:
    """One pass over the words, longest phrase first, remembering who set what."""

    def __init__(self, text: str, styles: Sequence[str]) -> None:
        self.out = ParsedPrompt(text)
        self.styles = [s for s in styles if s != "unknown"]
        self.setters: dict[str, str] = {}  # thing -> the words that set it

    def set(self, thing: str, value: object, words: str, shown: str) -> None:
        """Set ``thing`` (a field, or ``"PROGRAM:kind"`` for an instrument), refusing a second, different value."""
        target, attr = thing.split(":", 1) if ":" in thing else (thing, "")
        before = self.setters.get(thing)
        current = (self.out.per_instrument.get(int(target), {}).get(attr) if attr else getattr(self.out, thing))
        if before is not None and current != value:
            raise PromptError(f"the prompt {self.out.text!r} asks for two values of {attr or thing}: "
                              f"'{before}' and '{words}'; keep one")
        self.setters[thing] = words
        if attr:
            self.out.per_instrument.setdefault(int(target), {})[attr] = float(value)  # type: ignore[arg-type]
        else:
            setattr(self.out, thing, value)
        self.out.uses.append((words, shown))

    def style_of(self, word: str) -> str | None:
        if word in self.styles:
            return word
        return next((s for s in self.styles if word in s.split("-")), None)

    def match(self, words: list[str], k: int) -> tuple[int, str, Any]:
        """The longest phrase at ``words[k]``: (its length in words, its kind, its value)."""
        if words[k] == "in" and (size := self._key(words[k + 1 : k + 3])):
            return 1 + size, "key", Key.parse(" ".join(words[k + 1 : k + 1 + size]))
        if words[k] in CHORD_WORDS and (size := self._chords(words[k + 1 :])):
            return 1 + size, "chords", " ".join(name(c) for c in parse_chords(" ".join(words[k + 1 : k + 1 + size])))
        if k + 1 < len(words) and re.fullmatch(r"\d+(\.\d+)?", words[k]) and words[k + 1] == "bpm":
            return 2, "tempo", float(words[k])
        for size in (3, 2, 1):
            phrase = " ".join(words[k : k + size])
            if size > len(words) - k:
                continue
            for kind, table in (("tempo", TEMPO), ("mode", MODE), ("density", DENSITY), ("loudness", LOUDNESS),
                                ("instrument", INSTRUMENTS)):
                if phrase in table:
                    return size, kind, table[phrase]
        word = words[k]
        if word in ",;.":
            return 1, "break", None
        if self.style_of(word):
            return 1, "style", self.style_of(word)
        return 1, "filler" if word in FILLER else "unknown", None

    def read(self) -> ParsedPrompt:
        words = _tokens(self.out.text)
        pending: list[tuple[str, float, str]] = []  # modifiers waiting for an instrument: (kind, value, words)
        k = 0
        while k < len(words):
            size, kind, value = self.match(words, k)
            phrase = " ".join(words[k : k + size])
            k += size
            if kind in PIECE_KINDS:
                pending.append((kind, float(value), phrase))
                continue
            if kind == "instrument":
                self._instrument(phrase, int(value), pending)
                pending = []
                continue
            if kind == "filler":
                continue
            self._flush(pending)
            pending = []
            if kind == "unknown":
                self.out.unknown.append(phrase)
            elif kind == "break":
                continue
            elif kind == "key":
                self.set("key", value, phrase, f"key {value}")
                self.set("mode", value.mode, phrase, f"mode {value.mode}")
            elif kind == "tempo":
                self.set("tempo", value, phrase, f"tempo {value:g} bpm")
            elif kind == "chords":
                self.set("chords", value, phrase, f"chords {value.replace(' ', '-')}")
            else:  # mode, style
                self.set(kind, value, phrase, f"{kind} {value}")
        self._flush(pending)
        if not self.out.uses and self.out.text.strip():
            raise PromptError(f"the prompt {self.out.text!r}: no word the rules know "
                              f"(not understood: {', '.join(self.out.unknown)}); see harmonixr.generation.text")
        return self.out

    @staticmethod
    def _chords(words: list[str]) -> int:
        """How many of ``words``, from the first, are chord symbols."""
        size = 0
        while size < len(words) and words[size] not in ",;.":
            try:
                parse_chords(words[size])
            except HarmonixrError:
                break
            size += 1
        return size

    def _key(self, words: list[str]) -> int:
        """How many of ``words`` name a key (``a minor``: 2, ``eb``: 1), 0 if they do not."""
        for size in (2, 1):
            try:
                if len(words) >= size and (size == 2 or words[0] not in FILLER):
                    Key.parse(" ".join(words[:size]))
                    return size
            except HarmonixrError:
                continue
        return 0

    def _instrument(self, phrase: str, program: int, pending: list[tuple[str, float, str]]) -> None:
        if program not in self.out.instruments:
            self.out.instruments.append(program)
        self.out.uses.append((phrase, "instrument drums" if program < 0 else f"instrument {program}"))
        for kind, value, words in pending:
            self.set(f"{program}:{kind}", value, f"{words} {phrase}", f"{phrase} {kind} {value:g}")

    def _flush(self, pending: list[tuple[str, float, str]]) -> None:
        for kind, value, words in pending:
            shown = f"{kind} {value:g}" + (" notes per bar" if kind == "density" else " mean velocity")
            self.set(kind, value, words, shown)


def parse_prompt(text: str, styles: Sequence[str]) -> ParsedPrompt:
    """Read ``text`` with the rules above; ``styles``: the model's style labels.

    Raises :class:`PromptError` for contradictions (two tempos, two modes, ...) and for a prompt of
    which no word is understood."""
    return _Reader(text, styles).read()


def prompt_key(parsed: ParsedPrompt, score: Score | None = None) -> Key | None:
    """The key whose scale the new notes keep: the one named, or for a mode alone, the piece's own
    key in that mode (its relative key when the piece is in the other mode), C major or A minor
    for a new piece."""
    if parsed.key is not None or parsed.mode is None:
        return parsed.key
    if score is None:
        return Key(0, "major") if parsed.mode == "major" else Key(9, "minor")
    own = estimate_key(score)
    if own.mode == parsed.mode:
        return own
    return Key((own.tonic + (9 if parsed.mode == "minor" else 3)) % 12, parsed.mode)


def _family(program: int) -> int:
    return -1 if program < 0 else program // 8  # GM families of 8 programs; drums apart


def track_controls(parsed: ParsedPrompt, programs: Sequence[int], playing: Sequence[int],
                   rewritten: Sequence[int] | None = None) -> dict[int, TrackControls]:
    """Per-track controls of an infill: ``programs`` of the piece's tracks (-1: drums), ``playing``
    the indices of those that play around the region, ``rewritten`` those the fill writes (None:
    all; the others get none). An instrument's own words set the tracks of its GM family; the
    piece's loudness goes to every track, its density is shared among the tracks that play."""
    out: dict[int, TrackControls] = {}
    share = parsed.density / max(len(playing), 1) if parsed.density is not None else None
    for index, program in enumerate(programs):
        if rewritten is not None and index not in rewritten:
            continue
        own = next((v for p, v in parsed.per_instrument.items() if _family(p) == _family(program)), {})
        density = own.get("density", share if index in playing else None)
        loudness = own.get("loudness", parsed.loudness)
        if density is not None or loudness is not None:
            out[index] = TrackControls(density=density, loudness=loudness)
    return out


def set_track_loudness(score: Score, parsed: ParsedPrompt) -> Score:
    """A new piece has no per-track controls: its tracks of an instrument the prompt gave a loudness
    (``loud drums``) get their velocities scaled to that mean (clipped to 1-127)."""
    for k, track in enumerate(score.tracks):
        program = -1 if track.is_drum else track.program
        asked = next((v["loudness"] for p, v in parsed.per_instrument.items()
                      if "loudness" in v and _family(p) == _family(program)), None)
        if asked is not None:
            score = score_to_mean_velocity(score, asked, [k])
    return score
