"""The web studio's operations without the web: open a piece, rewrite it, hear it, keep or undo, choose.

The page (:mod:`harmonixr.web.app`) turns its widgets into a :class:`Request` and shows what comes
back; everything it does goes through :class:`Studio`, which calls the same library functions as
the CLI (:class:`~harmonixr.generation.modes.Generator`, :func:`~harmonixr.generation.outputs.write_result`,
:class:`~harmonixr.rl.preferences.PreferenceStore`). A visitor's state is a :class:`Desk`: the piece,
the pieces before it (undo) and the variations of the last request.

Files live in the studio's folder only: an upload is copied there under a random name (its own
name is only shown), parsed in a child process with the upload limits, and never executed;
results are written under ``results/`` with random names. The folder is emptied when the studio
starts and kept under ``max_workdir_mb`` (:meth:`Studio.tidy` deletes the oldest files first), and
no audio is longer than ``max_audio_seconds``, so no upload can fill the disk.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from symusic import Score

from harmonixr.data.validate import RejectError
from harmonixr.errors import HarmonixrError
from harmonixr.generation.demo import EXAMPLES, example_score
from harmonixr.generation.modes import Generator
from harmonixr.generation.outputs import write_result
from harmonixr.generation.piece import GenerationError, Piece, Region
from harmonixr.generation.refine import refine
from harmonixr.generation.requests import MusicRules, Result
from harmonixr.generation.surroundings import Surroundings
from harmonixr.generation.text import ParsedPrompt, PromptError, parse_prompt, prompt_key, set_track_loudness, track_controls
from harmonixr.rl.preferences import PreferenceError, PreferenceStore
from harmonixr.sampling.sampler import SamplingConfig, SamplingTimeout
from harmonixr.tokens.prompt import Hole, TrackControls
from harmonixr.tokens.vocab import instrument_name
from harmonixr.visualization.audio import can_render, write_wav
from harmonixr.web.config import MIB, StudioConfig

OPS = ("infill", "continue", "add-track", "refine", "generate")
UPLOAD_SUFFIXES = (".mid", ".midi")
FOLDERS = ("uploads", "results", "gradio")  # the studio's own files, and Gradio's cache (GRADIO_TEMP_DIR)
LOG = logging.getLogger("harmonixr.studio")  # a line per request (``harmonixr serve`` prints them)
PIECES_KEPT = 32  # tokenized takes kept in memory (every keystroke in the region box asks for one)


class StudioError(HarmonixrError):
    """A request the studio refuses or cannot carry out; the message is shown to the visitor."""


@dataclass(frozen=True)
class Take:
    """A piece on the desk: its MIDI file in the studio's folder, what to call it, its style, and
    what the MIDI parser repaired when it was uploaded."""

    midi: str
    name: str
    style: str
    repairs: tuple[str, ...] = ()

    def score(self) -> Score:
        return _read(self.midi, f"the piece {self.name!r}")


@dataclass(frozen=True)
class Variation:
    """One result of a request: whole-piece MIDI, a WAV of the region with bars around it."""

    midi: str
    wav: str  # "" where no WAV renderer is installed
    region: tuple[int, int | None]  # ticks rewritten (end None: to the end)
    notes: int
    positions: int  # model steps (a note each, and the end)
    finished: bool  # the model closed the region itself
    source: str = "sampled"  # or the song's bars it was copied from ("from bars 17-18")
    notice: str = ""  # what the visitor should know: draws repeated, a track left silent, cut at the budget

    def score(self) -> Score:
        return _read(self.midi, "this variation")


def download_stem(piece: str, request: Request) -> str:
    """What a download is called: the piece, the operation, the bars (``chorale-bwv-66-infill-bars-3-4``)."""
    where = f"bars-{request.region}" if request.op in ("infill", "add-track") and request.region else (
        f"{request.bars}-bars" if request.op in ("continue", "generate") else "")
    name = re.sub(r"\.midi?$", "", piece, flags=re.IGNORECASE)
    words = re.findall(r"[a-z0-9]+", f"{name} {request.op} {where}".lower())
    return "-".join(words)[:80] or "variation"


def _read(midi: str, what: str) -> Score:
    """A file of the studio's folder, or a refusal when :meth:`Studio.tidy` has deleted it."""
    if not Path(midi).is_file():
        raise StudioError(f"{what} is no longer on the server (the studio keeps its newest files only): open it again")
    return Score(midi)


@dataclass
class Desk:
    """One visitor's state."""

    take: Take | None = None
    history: list[Take] = field(default_factory=list)  # earlier takes, newest last (undo)
    variations: list[Variation] = field(default_factory=list)
    request: dict = field(default_factory=dict)  # what the variations answer (stored with a choice)
    last: Request | None = None  # the last request (try again; kept across undo)
    parsed: str = ""  # how the last request's prompt was read

    def current(self) -> Take:
        """The piece on the desk; refused when there is none."""
        if self.take is None:
            raise StudioError("open a piece (upload a MIDI file or load an example) first")
        return self.take

    def open(self, take: Take) -> None:
        """Put ``take`` on the desk; the piece before it can be brought back with :meth:`undo`."""
        if self.take is not None:
            self.history.append(self.take)
        self.take, self.variations, self.request, self.last = take, [], {}, None

    def keep(self, k: int) -> Take:
        """Variation ``k`` (0-based) becomes the piece (a new piece may be kept on an empty desk)."""
        if not 0 <= k < len(self.variations):
            raise StudioError(f"there is no variation {k + 1} to keep")
        op, style = self.request.get("op", "edit"), self.request["style"]
        name = f"{self.take.name} + {op}" if self.take is not None and op != "generate" else f"new {style} piece"
        last, kept = self.last, Take(self.variations[k].midi, name, style)
        self.open(kept)
        self.last = last  # try again works on the kept piece too
        return kept

    def undo(self) -> Take:
        """Back to the piece before the last keep or open."""
        if not self.history:
            raise StudioError("nothing to undo")
        self.take, self.variations, self.request = self.history.pop(), [], {}  # try again still works
        return self.take


@dataclass(frozen=True)
class Knobs:
    """Sampling settings of a request."""

    temperature: float = SamplingConfig.temperature
    top_p: float = SamplingConfig.top_p
    seed: int = 0
    variations: int = 2


@dataclass(frozen=True)
class NewPiece:
    """What ``generate`` writes: style, instruments (GM programs, -1 drums), tempo, meter, controls."""

    style: str = "pop"
    instruments: tuple[int, ...] = (0,)
    tempo: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    density: float | None = None  # notes per bar
    loudness: float | None = None  # mean velocity


@dataclass(frozen=True)
class Request:
    """One operation: ``infill`` (a region, all tracks or ``tracks``), ``continue`` (``bars`` new
    bars), ``add-track`` (GM ``program`` over the region, or the whole piece), ``refine`` or
    ``generate`` (a :class:`NewPiece` of ``bars`` bars)."""

    op: str
    region: str = ""  # "5-8" (bars, 1-based, inclusive) or "5:3-7:1" (beats, end excluded)
    tracks: tuple[int, ...] = ()  # 0-based indices of the tracks to rewrite (empty: all)
    bars: int = 4
    program: int = 33
    new: NewPiece = NewPiece()
    knobs: Knobs = Knobs()
    source: str = "piece"  # infill and continue: "piece" (the song's own bars first), "best" (infill) or "sampled"
    prompt: str = ""  # words (harmonixr.generation.text): style, tempo, mode, density, loudness, instruments
    controls: tuple[ControlRow, ...] = ()  # infill: the controls table's rows the visitor set


NO_AUDIO = "no audio: TinySoundFont is not installed here (pip install --no-deps tinysoundfont==0.3.7)"


RHYTHMS = {"kept": True, "keep": True, "free": False}  # the words of a rhythm cell of the controls table


class ControlRow(NamedTuple):
    """One row of the studio's controls table, as set (None: as inferred, or any velocity)."""

    track: int  # from 0
    density: float | None = None  # onsets per bar
    loudness: float | None = None  # mean velocity
    vel_low: int | None = None
    vel_high: int | None = None
    rhythm: bool | None = None  # kept (True) or free (False)


class Studio:
    """The model, the limits, the preference store and the folder of one ``harmonixr serve``."""

    def __init__(self, config: StudioConfig, generator: Generator, workdir: str | Path) -> None:
        self.config, self.limits, self.gen = config, config.limits, generator
        self.workdir = Path(workdir).resolve()
        for sub in FOLDERS:  # what an earlier run left is gone
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.store = PreferenceStore(config.prefs)
        self._lock = threading.Lock()  # one generation at a time: the decoder keeps state
        self._pieces: OrderedDict[tuple[str, str], Piece] = OrderedDict()  # (file, style) tokenized, newest last
        self.can_play = can_render()  # without TinySoundFont: no audio, everything else as usual

    def tidy(self) -> int:
        """Delete the oldest files of the studio's folders until they hold at most ``max_workdir_mb``;
        returns the bytes they hold then."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for sub in FOLDERS for p in (self.workdir / sub).rglob("*")
                 if p.is_file()]
        total, cap = sum(size for _, size, _ in files), self.limits.max_workdir_mb * MIB
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= cap:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total

    # -- opening -----------------------------------------------------------------------------
    def open_upload(self, path: str | Path, shown_name: str, style: str = "unknown") -> Take:
        """An uploaded file, checked against the upload limits and parsed in a child process."""
        path, name = Path(path), Path(shown_name).name
        if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
            raise StudioError(f"{name}: not a MIDI file name (expected {' or '.join(UPLOAD_SUFFIXES)})")
        size = path.stat().st_size
        if size > self.limits.max_upload_bytes:
            raise StudioError(f"{name}: {size:,} bytes is more than the {self.limits.max_upload_bytes:,} bytes allowed")
        stored = self.workdir / "uploads" / f"{uuid.uuid4().hex}.mid"
        shutil.copyfile(path, stored)
        try:
            piece = Piece.from_file(str(stored), self.gen.vocab, style, self.limits.parse_limits())
        except (RejectError, GenerationError, ValueError) as exc:
            detail = exc.detail if isinstance(exc, RejectError) else str(exc)
            reason = exc.reason.value.replace("_", " ") if isinstance(exc, RejectError) else "cannot use it"
            raise StudioError(f"{name}: {reason}: {detail}") from None
        finally:
            stored.unlink(missing_ok=True)
        return replace(self._store(piece.original, name, piece.style), repairs=piece.repairs)

    def open_example(self, name: str) -> Take:
        """A piece of the bundled corpus (see :data:`~harmonixr.generation.demo.EXAMPLES`)."""
        if name not in EXAMPLES:
            raise StudioError(f"no example {name!r}; the examples are {', '.join(EXAMPLES)}")
        return self._store(example_score(name), EXAMPLES[name].title, EXAMPLES[name].style)

    def audio(self, take: Take) -> str | None:
        """A WAV of the piece beside its MIDI (rendered once; its first ``max_audio_seconds``);
        None where no renderer is installed (everything else works without one)."""
        if not self.can_play:
            return None
        wav = Path(take.midi).with_suffix(".wav")
        if not wav.exists():
            write_wav(take.score(), wav, max_seconds=self.limits.max_audio_seconds)
            self.tidy()
        return str(wav)

    def _store(self, score: Score, name: str, style: str) -> Take:
        path = self.workdir / "uploads" / f"{uuid.uuid4().hex}.mid"
        score.dump_midi(str(path))
        return Take(str(path), name, style)

    # -- writing -----------------------------------------------------------------------------
    def run(self, desk: Desk, request: Request) -> list[Variation]:
        """Carry out ``request`` on the desk's piece; the variations are also left on the desk."""
        self._check(desk, request)
        knobs = request.knobs
        sampling = SamplingConfig(temperature=knobs.temperature, top_p=knobs.top_p)
        try:
            piece = None if request.op == "generate" else self.piece(desk.current())
            with self._lock, self.gen.time_limit(self.limits.max_generation_s):
                results = self._results(piece, request, sampling)
        except SamplingTimeout:
            raise StudioError(f"generation took longer than the {self.limits.max_generation_s:g} s allowed; "
                              "ask for fewer bars or variations") from None
        except (GenerationError, RejectError) as exc:
            raise StudioError(str(exc)) from None
        folder = self.workdir / "results" / uuid.uuid4().hex
        stem = download_stem(desk.take.name if desk.take and request.op != "generate" else f"new {request.new.style}",
                             request)
        before = piece.original if piece is not None else None
        variations = []
        for k, result in enumerate(results):
            midi, *wav = write_result(result, folder / f"{stem}-{k + 1}.mid", before, wav=self.can_play,
                                      excerpt=True, max_audio_seconds=self.limits.max_audio_seconds)
            notices = [*result.notices(), *([] if self.can_play else [NO_AUDIO])]
            variations.append(Variation(str(midi), str(wav[0]) if wav else "", (result.start_tick, result.end_tick),
                                        result.notes, result.positions, result.finished,
                                        result.details.get("source", f"chords {result.details['chords']}"
                                                           if "chords" in result.details else "sampled"),
                                        "; ".join(notices)))
        self.tidy()
        LOG.info("%s %r tracks %s seed %d x%d source %s controls %s prompt %r -> %s", request.op, request.region,
                 list(request.tracks), knobs.seed, knobs.variations, request.source,
                 [tuple(row) for row in request.controls], request.prompt,
                 "; ".join(f"{v.source}, {v.notes} notes" for v in variations))
        desk.variations = variations
        parsed = self.parse(request)
        desk.parsed = parsed.summary() if parsed is not None else ""
        desk.request = {"source": desk.take.name if desk.take else "", **asdict(request),
                        "style": desk.take.style if desk.take and request.op != "generate" else request.new.style}
        desk.last = request
        if request.op == "generate":
            desk.request["controls"] = [int(v) for v in self.gen.header_values(request.new.tempo, self._controls(request))]
        return variations

    def again(self, desk: Desk) -> list[Variation]:
        """The last request once more with the next seeds (seed + variations), sampled: new takes
        (a piece-aware infill's copies were the first try), and the seed shown says how to get them again."""
        if desk.last is None:
            raise StudioError("nothing to try again yet")
        knobs = replace(desk.last.knobs, seed=desk.last.knobs.seed + desk.last.knobs.variations)
        return self.run(desk, replace(desk.last, knobs=knobs, source="sampled"))  # the song's best bars were the first try

    def piece(self, take: Take) -> Piece:
        """``take`` tokenized, once per style: a take's file never changes, and the modes do not
        modify a Piece."""
        key = (take.midi, take.style)
        piece = self._pieces.pop(key, None) or self.gen.piece(take.score(), take.style)
        self._pieces[key] = piece
        while len(self._pieces) > PIECES_KEPT:
            self._pieces.popitem(last=False)
        return piece

    def bars(self, take: Take) -> int:
        """How many bars ``take`` has."""
        return self.piece(take).bars

    def inferred_controls(self, take: Take, spec: str, tracks: tuple[int, ...] = ()) -> list[list]:
        """Per track of the region: [track, name, notes per bar, mean velocity, velocities, rhythm]
        measured on the bars around it (what an infill asks for unless the visitor changes it; the
        velocity range is not inferred: empty, any; the rhythm is kept for a track that plays on either
        side of the region, else free); [] without a region."""
        return self._inferred(self.piece(take), spec, tracks)

    def _inferred(self, piece: Piece, spec: str, tracks: tuple[int, ...] = ()) -> list[list]:
        try:
            region = piece.region(spec, tracks)
        except GenerationError:
            return []
        if region.start[0] >= piece.bars:
            return []
        end = region.end if region.end is not None and region.end[0] < piece.bars else None
        hole = Hole(region.start, end, tuple(s for s in map(piece.slot_of, tracks) if s is not None))
        names = piece.original.tracks
        rows = []
        near = Surroundings(piece, hole, self.gen.vocab)
        for slot, c in sorted(near.controls().items(), key=lambda kv: piece.track_of(kv[0])):
            k = piece.track_of(slot)
            rows.append([k + 1, names[k].name or instrument_name(-1 if names[k].is_drum else names[k].program),
                         round(c.density, 1) if c.density is not None else None,
                         round(c.loudness) if c.loudness is not None else None, "",
                         "kept" if near.held_to(slot, c) else "free"])
        return rows

    def region_ticks(self, take: Take, spec: str) -> tuple[int, int | None] | None:
        """The ticks a region spec ("5-8", "5:3-7:1") covers in ``take``; None if it does not parse."""
        if not spec.strip():
            return None
        piece = self.piece(take)
        try:
            region = self._region(Request("infill", spec), piece)
        except StudioError:
            return None
        return piece.tick(*region.start), piece.tick(*region.end) if region.end is not None else None

    def _check(self, desk: Desk, request: Request) -> None:
        limits = self.limits
        if request.op not in OPS:
            raise StudioError(f"unknown operation {request.op!r}; one of {', '.join(OPS)}")
        if request.op != "generate":
            desk.current()  # refused without a piece
        if not 1 <= request.knobs.variations <= limits.max_variations:
            raise StudioError(f"variations: 1 to {limits.max_variations}, not {request.knobs.variations}")
        if request.op in ("continue", "generate") and not 1 <= request.bars <= limits.max_new_bars:
            raise StudioError(f"new bars: 1 to {limits.max_new_bars}, not {request.bars}")
        if request.op in ("infill", "add-track") and request.region:
            region = self._region(request)
            if region.end is not None and region.end[0] - region.start[0] > limits.max_region_bars:
                raise StudioError(f"the region spans more than {limits.max_region_bars} bars; choose a shorter one")
        if request.op == "infill" and not request.region:
            raise StudioError("choose the bars to rewrite, e.g. 5-8")

    def _region(self, request: Request, piece: Piece | None = None) -> Region:
        """The request's region: in ``piece``, its beats those of its meter and inside their bars
        (as the CLI reads them); without one, the syntax alone (beats: quarter notes)."""
        try:
            if piece is not None:
                return piece.region(request.region, request.tracks)
            return Region.parse(request.region, self.gen.vocab.grid, request.tracks)
        except GenerationError as exc:
            raise StudioError(str(exc)) from None

    def _controls(self, request: Request) -> dict[str, float]:
        new = request.new
        return {k: v for k, v in (("density", new.density), ("loudness", new.loudness)) if v is not None}

    def parse(self, request: Request) -> ParsedPrompt | None:
        """The request's prompt read with the model's styles (a contradiction is refused)."""
        if not request.prompt.strip():
            return None
        try:
            return parse_prompt(request.prompt, self.gen.vocab.styles)
        except PromptError as exc:
            raise StudioError(str(exc)) from None

    def _infill_controls(self, piece: Piece, request: Request, parsed: ParsedPrompt | None) -> dict[int, TrackControls]:
        """The prompt's per-track controls, then the table's (a value the visitor left: as inferred)."""
        out: dict[int, TrackControls] = {}
        if parsed is not None:
            programs = [-1 if t.is_drum else t.program for t in piece.original.tracks]
            out = track_controls(parsed, programs, [k for k in range(len(programs)) if piece.slot_of(k) is not None],
                                 piece.rewritten_by(self._region(request, piece)))
        shown = {row[0] - 1: (row[2], row[3], RHYTHMS[row[5]])
                 for row in self._inferred(piece, request.region, request.tracks)}
        for row in request.controls:
            track, density, loudness, vel_low, vel_high, rhythm = ControlRow(*row)
            inferred = shown.get(track, (None, None, None))
            density = None if density is not None and inferred[0] == density else density
            loudness = None if loudness is not None and inferred[1] == loudness else loudness
            rhythm = None if rhythm is not None and inferred[2] == rhythm else rhythm
            changed: dict[str, Any] = {k: v for k, v in (("density", density), ("loudness", loudness),
                                                         ("vel_low", vel_low), ("vel_high", vel_high),
                                                         ("rhythm", rhythm)) if v is not None}
            if changed and 0 <= track < len(piece.original.tracks):
                mine = replace(out.get(track, TrackControls()), **changed)
                if (problem := mine.problem()) is not None:
                    raise StudioError(f"the controls table, track {track + 1}: {problem}")
                out[track] = mine
        return out

    def _results(self, piece: Piece | None, request: Request, sampling: SamplingConfig) -> list[Result]:
        gen, knobs, n = self.gen, request.knobs, request.knobs.variations
        parsed = self.parse(request)
        rules = MusicRules()
        key = prompt_key(parsed, piece.original if piece is not None else None) if parsed is not None else None
        if key is not None:
            rules = MusicRules.in_key(key)
        if request.op == "generate":
            return self._new_pieces(request, parsed, sampling, rules)
        if piece is None:
            raise StudioError(f"{request.op} needs a piece")
        if request.op == "infill":
            return gen.infill(piece, self._region(request, piece), n, sampling, knobs.seed, rules,
                              controls=self._infill_controls(piece, request, parsed), source=request.source)
        if request.op == "continue":
            return gen.continue_(piece, request.bars, n=n, sampling=sampling, seed=knobs.seed,
                                 source="sampled" if request.source == "sampled" else "piece")
        if request.op == "add-track":
            region = self._region(request, piece) if request.region else None
            return gen.add_track(piece, request.program, region, instrument_name(request.program), n=n,
                                 sampling=sampling, seed=knobs.seed)
        assert request.op == "refine", request.op  # _check knows the operations
        return [refine(gen, piece, sampling=sampling, seed=knobs.seed + k) for k in range(n)]

    def _new_pieces(self, request: Request, parsed: ParsedPrompt | None, sampling: SamplingConfig,
                    rules: MusicRules) -> list[Result]:
        knobs, new = request.knobs, request.new
        if parsed is not None:  # the prompt's words over the form's values
            new = replace(new, style=parsed.style or new.style, tempo=parsed.tempo or new.tempo,
                          instruments=tuple(parsed.instruments) or new.instruments,
                          density=parsed.density if parsed.density is not None else new.density,
                          loudness=parsed.loudness if parsed.loudness is not None else new.loudness)
            request = replace(request, new=new)
        made = self.gen.generate(list(new.instruments), new.style, request.bars, new.tempo, new.time_signature,
                                 self._controls(request), knobs.variations, sampling, knobs.seed, rules,
                                 chords=parsed.chords if parsed is not None else None)
        return made if parsed is None else [replace(r, score=set_track_loudness(r.score, parsed)) for r in made]

    # -- choosing ----------------------------------------------------------------------------
    def prefer(self, desk: Desk, a: int, b: int, choice: str, who: str = "") -> int:
        """Store the visitor's choice between variations ``a`` and ``b`` (0-based); returns its id."""
        if len(desk.variations) < 2:
            raise StudioError("make at least two variations to compare")
        if a == b or not (0 <= a < len(desk.variations) and 0 <= b < len(desk.variations)):
            raise StudioError(f"compare two different variations of the {len(desk.variations)} made")
        va, vb = desk.variations[a], desk.variations[b]
        prompt = {**desk.request, "variations": [a + 1, b + 1], "model": str(self.config.model or "harmonixr-small")}
        try:
            return self.store.add(prompt, Path(va.midi).read_bytes(), Path(vb.midi).read_bytes(), choice,
                                  who.strip() or self.config.who)
        except PreferenceError as exc:
            raise StudioError(str(exc)) from None


def open_studio(config: StudioConfig, default_model: str | Path) -> Studio:
    """The studio of ``config``: its model (``default_model`` when ``config.model`` is empty) and
    its folder (a new temporary one when ``config.workdir`` is empty), where Gradio's copies of
    uploads and results go too (call this before importing :mod:`harmonixr.web.app`)."""
    workdir = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="harmonixr-studio-"))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir.resolve() / "gradio")
    return Studio(config, Generator(config.model or default_model), workdir)
