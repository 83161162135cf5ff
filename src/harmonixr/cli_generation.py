"""The generation verbs of the ``harmonixr`` command: demo, infill, continue, generate, add-track, refine.

Each verb parses its options into the library's types (:class:`Region`, :class:`SamplingConfig`,
:class:`MusicRules`, :class:`PostProcess`), calls one function of :mod:`harmonixr.generation`,
writes the results with :func:`write_result` and prints what it wrote.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "harmonixr-small"


def _model(args: argparse.Namespace) -> Path:
    path = Path(args.model) if args.model else DEFAULT_MODEL
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


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--model", help="checkpoint directory (default: the shipped models/harmonixr-small)")
    g.add_argument("-n", "--variations", type=int, default=1, help="variations, sampled in one batch")
    g.add_argument("--seed", type=int, default=0, help="the same seed gives the same MIDI")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--min-p", type=float, default=0.0)
    g.add_argument("--max-tokens", type=int, default=1024, help="tokens per model call at most")
    g.add_argument("--backend", choices=["auto", "numba", "torch"], default="auto", help="decoder (auto: numba on CPU)")
    c = p.add_argument_group("constraints (enforced while sampling)")
    c.add_argument("--pitch-range", type=_span, help="LOW-HIGH MIDI pitches of new notes, e.g. 48-84")
    c.add_argument("--key", help="keep new notes in this key's scale: 'C major', 'F# minor' or 'auto' (estimated)")
    c.add_argument("--max-polyphony", type=int, help="new notes sounding at once, at most")
    c.add_argument("--max-notes-per-bar", type=int, help="new notes per bar, at most (a density cap)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=out_required, help="output MIDI file (several variations: OUT-1.mid, ...)")
    o.add_argument("--png", action="store_true", help="also write a piano roll (original above, region shaded)")
    o.add_argument("--wav", action="store_true", help="also render a WAV with the offline SoundFont")
    o.add_argument("--transpose", type=int, default=0, help="semitones (drums stay)")
    o.add_argument("--tempo-scale", type=float, default=1.0)
    o.add_argument("--velocity-scale", type=float, default=1.0)
    o.add_argument("--quantize", type=int, default=0, help="snap to 1/N of a quarter note")
    o.add_argument("--snap-to-scale", help="move out-of-scale pitches to the scale: a key or 'auto'")


def _input(p: argparse.ArgumentParser) -> None:
    p.add_argument("midi", help="input MIDI file (parsed in a child process: a broken file gives an error, not a crash)")
    p.add_argument("--style", default="unknown", help="style label of the input (e.g. pop, chorale, folk-celtic)")


def _settings(args: argparse.Namespace, score=None):
    from harmonixr.generation.modes import MusicRules
    from harmonixr.generation.postprocess import Key, estimate_key
    from harmonixr.sampling.sampler import SamplingConfig

    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.min_p, args.max_tokens)
    rules = {}
    if args.pitch_range:
        rules["pitch_range"] = args.pitch_range
    if args.key:
        if args.key == "auto" and score is None:
            raise ValueError("--key auto estimates the key of the input piece; name a key here, e.g. --key 'D minor'")
        key = estimate_key(score) if args.key == "auto" else Key.parse(args.key)
        rules["scale"] = key.pitch_classes
    if args.max_polyphony:
        rules["max_polyphony"] = args.max_polyphony
    if args.max_notes_per_bar:
        rules["max_notes_per_bar"] = args.max_notes_per_bar
    return sampling, MusicRules(**rules), _post(args)


def _post(args: argparse.Namespace):  # noqa: ANN202 - PostProcess
    from harmonixr.generation.outputs import PostProcess

    return PostProcess(args.transpose, args.tempo_scale, args.velocity_scale, args.quantize, args.snap_to_scale)


def _write(console: Console, args: argparse.Namespace, results: list, before=None) -> int:
    from harmonixr.generation.outputs import output_paths, write_result

    post = _post(args)
    for result, path in zip(results, output_paths(args.out, len(results))):
        files = write_result(result, path, before, args.png, args.wav, post)
        status = "" if result.finished else " (cut at the token budget)"
        console.print(f"{result.mode}: {result.notes} notes, {result.tokens} tokens, {result.seconds:.2f} s{status} -> "
                      + ", ".join(str(f) for f in files))
    return 0


def _generator(args: argparse.Namespace):
    from harmonixr.generation.modes import Generator

    return Generator(_model(args), backend=args.backend)


def run_infill(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.piece import GenerationError, Region

    gen = _generator(args)
    piece = gen.piece(args.midi, args.style)
    if bool(args.bars) == bool(args.span):
        raise GenerationError("give the region as --bars A-B or as --span BAR:BEAT-BAR:BEAT")
    tracks = tuple(t - 1 for t in args.tracks) if args.tracks else ()
    region = Region.parse(args.bars or args.span, gen.vocab.grid, tracks)
    sampling, rules, _ = _settings(args, piece.original)
    results = gen.infill(piece, region, args.variations, sampling, args.seed, rules)
    return _write(console, args, results, piece.original)


def run_continue(args: argparse.Namespace, console: Console) -> int:
    gen = _generator(args)
    piece = gen.piece(args.midi, args.style)
    sampling, rules, _ = _settings(args, piece.original)
    results = gen.continue_(piece, args.bars, args.after_bar, args.variations, sampling, args.seed, rules,
                            after_notes=args.after_notes, notes=args.notes)
    return _write(console, args, results, piece.original)


def run_generate(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.piece import GenerationError

    gen = _generator(args)
    numerator, _, denominator = args.time_signature.partition("/")
    if not (numerator.isdigit() and denominator.isdigit()):
        raise GenerationError(f"--time-signature {args.time_signature!r}: expected N/D, e.g. 6/8")
    from harmonixr.generation.modes import control_tokens

    sampling, rules, _ = _settings(args)
    controls = control_tokens(gen.tokenizer, args.tempo, args.density, args.pitch_range, args.loudness)
    results = gen.generate(list(args.instruments), args.style, args.bars, args.tempo, (int(numerator), int(denominator)),
                           controls, args.variations, sampling, args.seed, rules, args.notes)
    return _write(console, args, results)


def run_add_track(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.piece import Region

    gen = _generator(args)
    piece = gen.piece(args.midi, args.style)
    region = Region.parse(args.bars, gen.vocab.grid) if args.bars else None
    sampling, rules, _ = _settings(args, piece.original)
    results = gen.add_track(piece, args.program, region, args.name, n=args.variations, sampling=sampling,
                            seed=args.seed, rules=rules)
    return _write(console, args, results, piece.original)


def run_refine(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.generation.refine import refine

    gen = _generator(args)
    piece = gen.piece(args.midi, args.style)
    sampling, _, _ = _settings(args)
    result = refine(gen, piece, args.rounds, args.fraction, args.max_holes, sampling=sampling, seed=args.seed)
    bits = " -> ".join(f"{b:.2f}" for b in result.details["bits_per_note"])
    console.print(f"mean bits per note by round: {bits}; {result.details['beats_rewritten']} beats rewritten")
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
    i.add_argument("--tracks", type=_ints, help="tracks to rewrite, 1-based, e.g. 2 or 1,3 (default: all; the others stay)")
    _common(i)
    i.set_defaults(run=partial(run_infill, console=console))

    c = verbs.add_parser("continue", help="continue a piece (or its first N bars)")
    _input(c)
    c.add_argument("--bars", type=int, default=8, help="new bars to write")
    c.add_argument("--after-bar", type=int, help="keep bars 1..N as the primer (default: the whole piece)")
    c.add_argument("--after-notes", type=int, help="keep the first N notes (and any starting with the Nth) as the primer")
    c.add_argument("--notes", type=int, help="write this many notes (then --bars is a cap)")
    _common(c)
    c.set_defaults(run=partial(run_continue, console=console))

    g = verbs.add_parser("generate", help="a new piece from nothing, in a style, with controls")
    g.add_argument("--style", default="pop")
    g.add_argument("--bars", type=int, default=16)
    g.add_argument("--notes", type=int, help="write this many notes (then --bars is a cap)")
    g.add_argument("--instruments", type=_ints, default=(0,), help="GM programs, -1 for drums, e.g. 0,33")
    g.add_argument("--tempo", type=float, default=120.0, help="bpm")
    g.add_argument("--time-signature", default="4/4")
    g.add_argument("--density", type=float, help="notes per bar (control token; cap it with --max-notes-per-bar)")
    g.add_argument("--loudness", type=float, help="mean velocity 1-127 (control token)")
    _common(g)
    g.set_defaults(run=partial(run_generate, console=console))

    a = verbs.add_parser("add-track", help="a new part (e.g. bass) over a span of a piece, the others kept")
    _input(a)
    a.add_argument("--program", type=int, required=True, help="GM program of the new part, e.g. 33 (bass)")
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
