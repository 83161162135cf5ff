"""The generation verbs of the ``harmonixr`` command: demo, infill, continue, generate, add-track, refine.

Each verb parses its options into the library's types (:class:`Region`, :class:`SamplingConfig`,
:class:`MusicRules`, :class:`PostProcess`), calls one function of :mod:`harmonixr.generation`,
writes the results with :func:`write_result` and prints what it wrote.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.console import Console

SHIPPED = Path("models") / "harmonixr-small"  # the shipped model, in a checkout
STDIO = "-"  # the input file or --out: MIDI bytes on stdin / stdout


def default_model() -> Path:
    """The model used without ``--model``: ``$HARMONIXR_MODEL``, else ``models/harmonixr-small`` in
    the current folder, else in the checkout this package was installed from (an editable install);
    a clear error naming the places looked in when none is there (a wheel does not carry the model)."""
    import os

    from harmonixr.models.checkpoint import CheckpointError

    places = [Path(os.environ["HARMONIXR_MODEL"])] if os.environ.get("HARMONIXR_MODEL") else []
    places += [Path.cwd() / SHIPPED, Path(__file__).resolve().parents[2] / SHIPPED]
    for place in places:
        if (place / "model.safetensors").is_file():
            return place
    raise CheckpointError("no model given and none found (looked in " + ", ".join(map(str, dict.fromkeys(places)))
                          + "): pass --model CHECKPOINT_DIR, set HARMONIXR_MODEL, or run from the checkout")
MAX_VARIATIONS = 64  # one call samples them in one batch: the memory grows with it
MAX_BARS = 128  # new bars of a continuation or a new piece (about 5 minutes at 100 bpm)
TEMPO_RANGE = (10.0, 1000.0)  # bpm, as the file limits


def _model(args: argparse.Namespace) -> Path:
    path = Path(args.model) if args.model else default_model()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model there (pass --model CHECKPOINT_DIR)")
    return path


def _span(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW-HIGH, e.g. 40-84") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None


def _control(text: str) -> tuple[int, dict[str, float]]:
    """``TRACK:KEY=VALUE[,KEY=VALUE]`` (track from 1), e.g. ``3:density=0`` or ``10:density=8,loudness=100``."""
    from harmonixr.tokens.prompt import TRACK_CONTROL_KEYS

    track, _, settings = text.partition(":")
    try:
        values = {key.strip(): float(value) for key, _, value in (part.partition("=") for part in settings.split(","))}
        index = int(track) - 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TRACK:KEY=VALUE, e.g. 3:density=0") from None
    unknown = set(values) - set(TRACK_CONTROL_KEYS)
    if unknown or index < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: tracks count from 1 and the keys are {', '.join(TRACK_CONTROL_KEYS)}")
    return index, values


def _controls(args: argparse.Namespace):  # noqa: ANN202 - dict[int, TrackControls]
    from harmonixr.generation.piece import GenerationError
    from harmonixr.tokens.prompt import TrackControls

    out: dict = {}
    for index, values in args.control or []:
        ints = {k: int(v) for k, v in values.items() if k in ("chord", "low", "high", "vel_low", "vel_high")}
        flags = {k: bool(v) for k, v in values.items() if k == "rhythm" and v in (0, 1)}  # else refused below
        out[index] = TrackControls(**{**out.get(index, TrackControls()).__dict__, **values, **ints, **flags})
    for index, controls in out.items():
        if (problem := controls.problem()) is not None:
            raise GenerationError(f"--control {index + 1}: {problem}")
    return out or None


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--model", help="checkpoint directory (default: the shipped models/harmonixr-small)")
    g.add_argument("-n", "--variations", type=int, default=1, help="variations, sampled in one batch")
    g.add_argument("--seed", type=int, default=0, help="the same seed gives the same MIDI")
    g.add_argument("--temperature", type=float, default=1.0, help="above 1: bolder, below 1: safer")
    g.add_argument("--top-k", type=int, default=0, help="draw among the k likeliest values of a field (0: off)")
    g.add_argument("--top-p", type=float, default=0.95, help="draw among the likeliest values holding this probability")
    g.add_argument("--min-p", type=float, default=0.0, help="drop values less likely than this share of the likeliest")
    g.add_argument("--max-notes", type=int, default=4096, help="notes per model call at most")
    g.add_argument("--backend", choices=["auto", "numba", "torch"], default="auto", help="decoder (auto: numba on CPU)")
    c = p.add_argument_group("constraints (enforced while sampling)")
    c.add_argument("--pitch-range", type=_span, help="LOW-HIGH MIDI pitches of new notes, e.g. 48-84")
    c.add_argument("--key", help="keep new notes in this key's scale, leaning to its tonic chord: 'C major', 'F# minor' "
                   "or 'auto' (estimated)")
    c.add_argument("--max-polyphony", type=int, help="new notes sounding at once, at most")
    c.add_argument("--max-notes-per-bar", type=int, help="new notes per bar, at most (a density cap)")
    c.add_argument("--control", type=_control, action="append", metavar="TRACK:KEY=VALUE",
                   help="what the fill should be like on one track (repeatable): density (onsets per bar, met "
                        "within 15%%; 0: silent), loudness (mean velocity, met), vel_low/vel_high (velocities, "
                        "enforced), low/high (pitches, enforced), chord (notes at once, a cap), rhythm (1: onsets "
                        "only at the positions in a bar where the track starts notes around the region, 0: anywhere), "
                        "e.g. 3:density=0 or 10:density=8,loudness=100; by default each is measured on the bars around "
                        "the region, and a track that plays around it keeps its rhythm")
    p.add_argument("--prompt", help="what you want, in words, e.g. 'sad slow jazz piano, sparse, loud drums' "
                                    "(style, tempo, mode or key, density, loudness, instruments; the parse is printed)")
    o = p.add_argument_group("output")
    o.add_argument("-o", "--out", required=out_required,
                   help="output MIDI file (several variations: OUT-1.mid, ...); '-': stdout (one variation, "
                        "messages on stderr)")
    o.add_argument("--png", action="store_true", help="also write a piano roll (original above, region shaded)")
    o.add_argument("--wav", action="store_true", help="also render a WAV with the offline SoundFont")
    o.add_argument("--transpose", type=int, default=0, help="semitones (drums stay)")
    o.add_argument("--tempo-scale", type=float, default=1.0)
    o.add_argument("--velocity-scale", type=float, default=1.0)
    o.add_argument("--quantize", type=int, default=0, help="snap to 1/N of a quarter note")
    o.add_argument("--snap-to-scale", help="move out-of-scale pitches to the scale: a key or 'auto'")


def _input(p: argparse.ArgumentParser) -> None:
    p.add_argument("midi", help="input MIDI file, '-' for stdin (parsed in a child process: a broken file gives "
                                "an error, not a crash)")
    p.add_argument("--style", default="unknown", help="style label of the input (e.g. pop, chorale, folk-celtic)")


def check(args: argparse.Namespace) -> None:
    """Refuse bad values before the model loads, naming the flag (a GenerationError: exit code 2)."""
    from harmonixr.generation.piece import GenerationError, Region
    from harmonixr.generation.postprocess import Key
    from harmonixr.sampling.sampler import SamplingConfig
    from harmonixr.visualization.audio import renderer

    def refuse(flag: str, value: object, rule: str) -> None:
        raise GenerationError(f"{flag} {value}: {rule}")

    if not 1 <= args.variations <= MAX_VARIATIONS:
        refuse("-n/--variations", args.variations, f"ask for 1 to {MAX_VARIATIONS} variations")
    if args.out == STDIO and (args.variations > 1 or args.png or args.wav):
        refuse("-o", STDIO, "stdout takes one MIDI file: one variation, without --png or --wav")
    if args.wav:
        renderer()  # no TinySoundFont: said now, before anything is loaded or written
    if getattr(args, "midi", None) == STDIO and sys.stdin.isatty():
        refuse("input", STDIO, "reads MIDI bytes from stdin, but stdin is a terminal: pipe a file in")
    if not 0 <= args.seed < 2**63:
        refuse("--seed", args.seed, "a seed is a whole number from 0 to 2**63 - 1")
    SamplingConfig(args.temperature, args.top_k, args.top_p, args.min_p, args.max_notes)  # names a bad setting
    if args.pitch_range and not 0 <= args.pitch_range[0] <= args.pitch_range[1] <= 127:
        refuse("--pitch-range", "-".join(map(str, args.pitch_range)), "LOW-HIGH with 0 <= LOW <= HIGH <= 127")
    if args.key and args.key != "auto":
        Key.parse(args.key)
    if getattr(args, "chords", None) is not None:
        from harmonixr.generation.harmony import parse_chords

        parse_chords(args.chords)  # names a chord it does not read
    for flag in ("max_polyphony", "max_notes_per_bar"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            refuse("--" + flag.replace("_", "-"), getattr(args, flag), "must be at least 1")
    if getattr(args, "tempo", None) is not None and not TEMPO_RANGE[0] <= args.tempo <= TEMPO_RANGE[1]:
        refuse("--tempo", args.tempo, f"a tempo from {TEMPO_RANGE[0]:g} to {TEMPO_RANGE[1]:g} bpm")
    bars = getattr(args, "bars", None)
    if isinstance(bars, int) and not 1 <= bars <= MAX_BARS:
        refuse("--bars", bars, f"ask for 1 to {MAX_BARS} bars")
    for flag in ("notes", "after_notes", "after_bar"):
        value = getattr(args, flag, None)
        if value is not None and value < (0 if flag == "after_bar" else 1):
            refuse("--" + flag.replace("_", "-"), value, "must be a positive number")
    if getattr(args, "program", None) is not None and not -1 <= args.program <= 127:
        refuse("--program", args.program, "a General MIDI program is 0 to 127, and -1 is drums")
    for program in getattr(args, "instruments", None) or ():
        if not -1 <= program <= 127:
            refuse("--instruments", program, "GM programs are 0 to 127, and -1 is drums")
    for flag in ("span",) + (("bars",) if isinstance(bars, str) else ()):
        if getattr(args, flag, None):
            Region.parse(getattr(args, flag), 12)  # the syntax; the piece's meter places the beats later
    if getattr(args, "tracks", None) and min(args.tracks) < 1:
        refuse("--tracks", ",".join(map(str, args.tracks)), "tracks count from 1")
    if getattr(args, "control", None):
        _controls(args)
    args.parsed = _parse_prompt(args)


GENERATE_DEFAULTS = {"style": "pop", "tempo": 120.0, "instruments": (0,), "density": None, "loudness": None, "key": None}


def _parse_prompt(args: argparse.Namespace):  # noqa: ANN202 - ParsedPrompt | None
    """``--prompt`` read with the checkpoint's styles (its tokenizer file; the weights load later).
    For a new piece, what the prompt sets replaces the flags' defaults; a flag given and set
    otherwise by the prompt is refused."""
    if not getattr(args, "prompt", None):
        return None
    from harmonixr.generation.text import parse_prompt, prompt_key
    from harmonixr.tokens.vocab import NoteVocab

    parsed = parse_prompt(args.prompt, NoteVocab.from_file(_model(args)).styles)
    if args.verb != "generate":
        if parsed.style and args.style == "unknown":
            args.style = parsed.style  # the style label of the input
        return parsed
    key = prompt_key(parsed)
    asked = {"style": parsed.style, "tempo": parsed.tempo, "instruments": tuple(parsed.instruments) or None,
             "density": parsed.density, "loudness": parsed.loudness, "key": str(key) if key else None}
    for flag, value in asked.items():
        given = getattr(args, flag)
        if value is None:
            continue
        if given != GENERATE_DEFAULTS[flag] and given != value:
            from harmonixr.generation.text import PromptError

            raise PromptError(f"--{flag} {given} and the prompt's {value}: keep one")
        setattr(args, flag, value)
    return parsed


def _settings(args: argparse.Namespace, score=None):
    from harmonixr.generation.postprocess import Key, estimate_key
    from harmonixr.generation.requests import MusicRules
    from harmonixr.sampling.sampler import SamplingConfig

    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.min_p, args.max_notes)
    rules = {}
    if args.pitch_range:
        rules["pitch_range"] = args.pitch_range
    parsed = getattr(args, "parsed", None)
    if parsed is not None and not args.key and score is not None:
        from harmonixr.generation.text import prompt_key

        key = prompt_key(parsed, score)
        args.key = str(key) if key else None
    if args.key:
        if args.key == "auto" and score is None:
            from harmonixr.generation.piece import GenerationError

            raise GenerationError("--key auto estimates the key of the input piece; name a key here, e.g. --key 'D minor'")
        key = estimate_key(score) if args.key == "auto" else Key.parse(args.key)
        rules["key"] = key
    if args.max_polyphony:
        rules["max_polyphony"] = args.max_polyphony
    if args.max_notes_per_bar:
        rules["max_notes_per_bar"] = args.max_notes_per_bar
    key = rules.pop("key", None)
    return sampling, MusicRules.in_key(key, **rules) if key else MusicRules(**rules), _post(args)


def _post(args: argparse.Namespace):  # noqa: ANN202 - PostProcess
    from harmonixr.generation.outputs import PostProcess

    return PostProcess(args.transpose, args.tempo_scale, args.velocity_scale, args.quantize, args.snap_to_scale)


def _console(console: Console, args: argparse.Namespace) -> Console:
    """Where messages go: stderr when the MIDI itself goes to stdout."""
    return Console(stderr=True, width=console.width) if args.out == STDIO else console


def _piece(gen, args: argparse.Namespace, console: Console):  # noqa: ANN001, ANN202 - Generator -> Piece
    """The input piece (``-``: MIDI bytes on stdin), parsed in a child process; what the parser
    repaired on the way in is said."""
    from harmonixr.data.validate import RejectError

    if args.midi != STDIO:
        piece = gen.piece(args.midi, args.style)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stdin.mid"
            path.write_bytes(sys.stdin.buffer.read())
            try:
                piece = gen.piece(path, args.style)
            except RejectError as exc:
                raise RejectError("<stdin>", exc.reason, exc.detail) from None
    for repair in piece.repairs:
        _console(console, args).print(f"note: {'<stdin>' if args.midi == STDIO else args.midi}: {repair}", highlight=False)
    return piece


def _write(console: Console, args: argparse.Namespace, results: list, before=None) -> int:
    from harmonixr.generation.outputs import output_paths, write_result

    console = _console(console, args)
    post = _post(args)
    parsed = getattr(args, "parsed", None)
    if parsed is not None:
        unused = [] if args.verb == "generate" else [
            f"{what} (a new piece's)" for what, value in (("tempo", parsed.tempo), ("instruments", parsed.instruments),
                                                          ("chords", parsed.chords))
            if value]
        if args.verb == "generate" and parsed.chords and args.chords:
            unused.append("chords (--chords given)")
        if args.verb == "generate" and any("density" in v for v in parsed.per_instrument.values()):
            unused.append("an instrument's density (an infill's per-track control)")
        console.print(f"prompt: {parsed.summary()}" + (f"; not used by {args.verb}: {', '.join(unused)}" if unused else ""))
    incomplete = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "out.mid"] if args.out == STDIO else output_paths(args.out, len(results))
        for result, path in zip(results, paths):
            files: list[str | Path] = [*write_result(result, path, before, args.png, args.wav, post)]
            if args.out == STDIO:
                sys.stdout.buffer.write(path.read_bytes())
                sys.stdout.buffer.flush()
                files = ["<stdout>"]
            incomplete += result.incomplete
            _said(console, result, files)
    return 1 if incomplete else 0  # 1: written, but a result is incomplete (said above)


def _said(console: Console, result, files: list[str | Path]) -> None:  # noqa: ANN001 - a Result
    """One line of what ``result`` is and where it went."""
    notes = result.notices()
    if result.details.get("source") not in (None, "sampled"):
        notes.append(result.details["source"])
    if result.details.get("chords"):
        notes.append(f"chords {result.details['chords']}")
    status = f" ({'; '.join(notes)})" if notes else ""
    console.print(f"{result.mode}: {result.notes} notes, {result.seconds:.2f} s{status} -> "
                  + ", ".join(str(f) for f in files))


def _generator(args: argparse.Namespace):
    from harmonixr.generation.modes import Generator

    check(args)  # before the model loads: a bad value costs no load time
    return Generator(_model(args), backend=args.backend)


def run_infill(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.piece import GenerationError

    gen = _generator(args)
    piece = _piece(gen, args, console)
    if bool(args.bars) == bool(args.span):
        raise GenerationError("give the region as --bars A-B or as --span BAR:BEAT-BAR:BEAT")
    tracks = tuple(t - 1 for t in args.tracks) if args.tracks else ()
    region = piece.region(args.bars or args.span, tracks)
    sampling, rules, _ = _settings(args, piece.original)
    controls = _controls(args)
    if args.parsed is not None:
        from harmonixr.generation.text import track_controls

        programs = [-1 if t.is_drum else t.program for t in piece.original.tracks]
        last = region.end[0] if region.end is not None else piece.bars
        around = piece.tick(max(region.start[0] - 2, 0)), piece.tick(min(last + 2, piece.bars))  # two bars each side
        playing = [k for k, t in enumerate(piece.original.tracks)
                   if any(around[0] <= n.time < around[1] for n in t.notes)]
        controls = {**track_controls(args.parsed, programs, playing, piece.rewritten_by(region)), **(controls or {})} or None
    results = gen.infill(piece, region, args.variations, sampling, args.seed, rules, controls=controls,
                         source=args.source)
    return _write(console, args, results, piece.original)


def run_continue(args: argparse.Namespace, console: Console) -> int:
    gen = _generator(args)
    piece = _piece(gen, args, console)
    sampling, rules, _ = _settings(args, piece.original)
    results = gen.continue_(piece, args.bars, args.after_bar, args.variations, sampling, args.seed, rules,
                            after_notes=args.after_notes, notes=args.notes, source=args.source)
    return _write(console, args, results, piece.original)


def run_generate(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.piece import GenerationError

    numerator, _, denominator = args.time_signature.partition("/")
    if not (numerator.isdigit() and denominator.isdigit() and int(numerator) > 0
            and int(denominator) in (1, 2, 4, 8, 16, 32)):
        raise GenerationError(f"--time-signature {args.time_signature!r}: expected N/D, e.g. 6/8")
    gen = _generator(args)
    sampling, rules, _ = _settings(args)
    controls = {k: v for k, v in (("density", args.density), ("pitch_range", args.pitch_range),
                                  ("loudness", args.loudness)) if v is not None}
    results = gen.generate(list(args.instruments), args.style, args.bars, args.tempo, (int(numerator), int(denominator)),
                           controls, args.variations, sampling, args.seed, rules, args.notes,
                           args.chords or (args.parsed.chords if args.parsed is not None else None))
    if args.parsed is not None:
        from harmonixr.generation.text import set_track_loudness

        results = [replace(r, score=set_track_loudness(r.score, args.parsed)) for r in results]
    return _write(console, args, results)


def run_add_track(args: argparse.Namespace, console: Console) -> int:

    gen = _generator(args)
    piece = _piece(gen, args, console)
    region = piece.region(args.bars) if args.bars else None
    sampling, rules, _ = _settings(args, piece.original)
    results = gen.add_track(piece, args.program, region, args.name, n=args.variations, sampling=sampling,
                            seed=args.seed, rules=rules)
    return _write(console, args, results, piece.original)


def run_refine(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.refine import refine

    gen = _generator(args)
    piece = _piece(gen, args, console)
    sampling, _, _ = _settings(args)
    result = refine(gen, piece, args.rounds, args.fraction, args.max_holes, sampling=sampling, seed=args.seed)
    bits = " -> ".join(f"{b:.2f}" for b in result.details["bits_per_note"])
    _console(console, args).print(f"mean bits per note by round: {bits}; {result.details['beats_rewritten']} beats rewritten "
                  f"({result.details['notes_removed']} notes out, {result.details['notes_written']} in)")
    return _write(console, args, [result], piece.original)


def run_demo(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.demo import run_demo as demo

    demo(_model(args), args.out, args.seed, not args.no_wav, console)
    return 0


def add_generation_verbs(verbs: argparse._SubParsersAction, console: Console) -> None:
    """Register the generation verbs on the main parser's subcommands."""
    from functools import partial

    d = verbs.add_parser("demo", help="the main job: the shipped model on pieces of the bundled corpus -> out/")
    d.add_argument("--model", help="checkpoint directory (default: models/harmonixr-small)")
    d.add_argument("--out", default="out", help="output folder (default: out)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-wav", action="store_true", help="skip the audio renders")
    d.set_defaults(run=partial(run_demo, console=console))

    i = verbs.add_parser("infill", help="rewrite bars or a beat span, all tracks or some, with context on both sides")
    _input(i)
    i.add_argument("--bars", help="bars A-B (1-based, inclusive), e.g. 5-8")
    i.add_argument("--span", help="beat span BAR:BEAT-BAR:BEAT (end excluded), e.g. 5:3-7:1")
    i.add_argument("--source", choices=["piece", "best", "sampled"], default="piece",
                   help="piece: the song's own spans of the region's length whose surrounding bars match the "
                        "region's (piece-aware); best: those that match well, then spans and sampled fills by "
                        "the model's bits per note; sampled: sampled fills only (a span is offered only where it "
                        "meets the --control, --prompt and rules asked)")
    i.add_argument("--tracks", type=_ints, help="tracks to rewrite, 1-based, e.g. 2 or 1,3 (default: all; the others stay)")
    _common(i)
    i.set_defaults(run=partial(run_infill, console=console))

    c = verbs.add_parser("continue", help="continue a piece (or its first N bars), its tracks playing on as before the cut")
    _input(c)
    c.add_argument("--bars", type=int, default=8, help="new bars to write")
    c.add_argument("--after-bar", type=int, help="keep bars 1..N as the primer (default: the whole piece)")
    c.add_argument("--after-notes", type=int, help="keep the first N notes (and any starting with the Nth) as the primer")
    c.add_argument("--notes", type=int, help="write this many notes (then --bars is a cap)")
    c.add_argument("--source", choices=["piece", "sampled"], default="piece",
                   help="piece: the bars that followed the passages of the song likest the bars before the cut, "
                        "then sampled continuations make up the number (whole bars after --after-bar, no --notes); "
                        "sampled: sampled continuations only")
    _common(c)
    c.set_defaults(run=partial(run_continue, console=console))

    g = verbs.add_parser("generate", help="a new piece from nothing, in a style, with controls")
    g.add_argument("--style", default="pop")
    g.add_argument("--bars", type=int, default=16)
    g.add_argument("--notes", type=int, help="write this many notes (then --bars is a cap)")
    g.add_argument("--instruments", type=_ints, default=(0,), help="GM programs, -1 for drums, e.g. 0,33")
    g.add_argument("--tempo", type=float, default=120.0, help="bpm")
    g.add_argument("--time-signature", default="4/4")
    g.add_argument("--density", type=float,
                   help="notes per bar, all tracks (each gets its share, met within 15%%, paced through the bars)")
    g.add_argument("--loudness", type=float, help="mean velocity 1-127 (a control the model learned)")
    g.add_argument("--chords", help="a chord a bar, repeated, that the parts lean to, e.g. 'Am F C G' "
                   "(default: a common progression of the key)")
    _common(g)
    g.set_defaults(run=partial(run_generate, console=console))

    a = verbs.add_parser("add-track", help="a new part (e.g. bass) over a span of a piece, the others kept")
    _input(a)
    a.add_argument("--program", type=int, required=True, help="GM program of the new part, e.g. 33 (bass); -1: drums")
    a.add_argument("--name", help="track name (default: the instrument's name)")
    a.add_argument("--bars", help="bars A-B (default: the whole piece)")
    _common(a)
    a.set_defaults(run=partial(run_add_track, console=console))

    r = verbs.add_parser("refine", help="rewrite the beats whose notes the model finds least likely")
    _input(r)
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--fraction", type=float, default=0.1, help="share of the least likely notes to look at per round")
    r.add_argument("--max-holes", type=int, default=6, help="beats rewritten per round at most")
    _common(r)
    r.set_defaults(run=partial(run_refine, console=console))
