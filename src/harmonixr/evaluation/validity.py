"""Is a generated result valid? It must make a MIDI file that parses, and an infill must leave
everything outside its region as it was and write nothing outside it.

:func:`check_result` compares a result with the original it was made from, note by note per track
(onset, duration, pitch, velocity): notes of tracks that were not rewritten, and notes outside the
region's time span, must be identical; new notes must start inside the span and in the rewritten
tracks. The MIDI check writes the score to bytes and parses them again with symusic and with mido
(an independent parser).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

from symusic import Score

from harmonixr.generation.requests import Result


@dataclass(frozen=True)
class Check:
    valid_midi: bool  # the score's MIDI bytes parse with symusic and mido, with every note
    context_identical: bool  # everything outside (region x rewritten tracks) is the original's
    notes_inside: int  # new notes in the region
    notes_outside: int  # notes that are neither the original's nor inside the region (must be 0)
    detail: str = ""


def midi_parses(score: Score) -> tuple[bool, str]:
    """Whether ``score``'s MIDI bytes parse again (symusic and mido) with all its notes."""
    import mido

    data = score.dumps_midi()
    try:
        again = Score.from_midi(data)
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parser error makes the file invalid
        return False, f"{type(exc).__name__}: {exc}"
    ons = sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)
    if again.note_num() != score.note_num() or ons != score.note_num():
        return False, f"{score.note_num()} notes written, {again.note_num()} (symusic) / {ons} (mido) read back"
    return True, ""


def _notes(track) -> Counter:  # noqa: ANN001 - symusic track
    return Counter((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def check_result(original: Score, result: Result) -> Check:
    """Check ``result`` against ``original`` (see the module docstring)."""
    ok, detail = midi_parses(result.score)
    out = result.score
    stop = result.end_tick if result.end_tick is not None else 1 << 62
    rewritten = set(result.tracks)
    identical, inside, outside = True, 0, 0
    meta = (out.ticks_per_quarter == original.ticks_per_quarter
            and [(t.name, t.program, t.is_drum) for t in out.tracks[: len(original.tracks)]]
            == [(t.name, t.program, t.is_drum) for t in original.tracks]
            and [(t.time, t.qpm) for t in out.tempos] == [(t.time, t.qpm) for t in original.tempos][: len(out.tempos)])
    if not meta:
        identical, detail = False, detail or "tempo map, tracks or resolution changed"
    for index, track in enumerate(out.tracks):
        before = _notes(original.tracks[index]) if index < len(original.tracks) else Counter()
        after = _notes(track)
        in_region = lambda note, i=index: i in rewritten and result.start_tick <= note[0] < stop  # noqa: E731
        kept_before = Counter({n: c for n, c in before.items() if not in_region(n)})
        kept_after = Counter({n: c for n, c in after.items() if not in_region(n)})
        if kept_before != kept_after:
            identical = False
            extra = kept_after - kept_before
            outside += sum(extra.values())
            lost = sum((kept_before - kept_after).values())
            detail = detail or f"track {index + 1}: {lost} notes lost, {sum(extra.values())} added outside"
        inside += sum(c for n, c in after.items() if in_region(n))
    return Check(ok, identical, inside, outside, detail)
