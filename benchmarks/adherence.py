"""Control adherence of infill: what was asked of each track against what the fill did, on held-out pieces.

A hole of ``--bars`` whole bars in the middle of ``--pieces`` test pieces per family, every track.
For each hole, two fills (sampled, so every note comes from the model under its controls):

- **asked**: each track that plays around the hole is asked for a density (onsets per bar) and a
  mean velocity drawn around what it plays there (x0.5 to x2, and -30 to +30), and half of the
  melodic tracks for a pitch range (a random window of 12 to 24 semitones inside the track's
  range around the hole), and half of all tracks for a velocity range (20 to 40 wide, around the
  asked loudness). Printed: the correlation of asked and achieved density and loudness over all
  (hole, track) pairs, and the shares of notes inside the asked pitch and velocity ranges.
- **inferred** (the default, nothing asked): drums in all-track fills of drum songs (holes whose
  drum track plays around them), tracks silent around the hole that stay silent, and tracks that
  play on both sides of it: the correlation of the density around the hole and in the fill, the
  share of them inside the window a sampled fill keeps (``surroundings.INFERRED_TOLERANCE``), and
  the share of their melodic notes within ``surroundings.INFERRED_MARGIN`` semitones of the
  pitches played around the hole, the share of their onsets at the positions in a bar where they
  start notes around it (the rhythm they keep), and the share with no more notes than their
  biggest chord there. Tracks that play on one side only (they enter or leave in the hole): the
  share at or under the most onsets they are held to, the same pitch, rhythm and chord shares, and
  their notes in the fill against the song's own.

    python benchmarks/adherence.py models/harmonixr-small --pieces 10 --bars 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.infill_quality import middle_holes
from harmonixr.generation.asked import onset_windows
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, split_pieces
from harmonixr.generation.surroundings import INFERRED_MARGIN, INFERRED_TOLERANCE, Surroundings
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK
from harmonixr.tokens.prompt import Hole, TrackControls

SAMPLING = SamplingConfig()
MIN_AROUND_DENSITY = 0.5  # onsets per bar around the hole for a track to count as playing there


def achieved(piece: Piece, track: int, hole: Hole, bars: int) -> tuple[float, float | None, list, np.ndarray, np.ndarray]:
    """(onsets per bar, mean velocity or None, notes, the onsets' grid positions in their bars and
    their notes) of ``track`` of a filled ``piece`` in ``hole``; onsets on the grid, as a density
    control counts them (a performed chord is one onset)."""
    slot = piece.slot_of(track)
    if slot is None:
        return 0.0, None, [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    inside = piece.notes[hole.contains(piece.notes, piece.vocab) & (piece.notes[:, TRACK] == slot)]
    start, end = piece.tick(*hole.start), piece.tick(*hole.end)
    notes = [n for n in piece.original.tracks[track].notes if start <= n.time < end]
    onsets, sizes = np.unique(inside[:, [BAR, POS]], axis=0, return_counts=True)
    return len(onsets) / bars, (float(np.mean([n.velocity for n in notes])) if notes else None), notes, onsets[:, 1], sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="test")
    parser.add_argument("--pieces", type=int, default=10, help="pieces per family")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/adherence.json")
    args = parser.parse_args()
    console = Console(width=160)
    began = time.perf_counter()
    gen = Generator(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    holes = middle_holes(split_pieces(Corpus([args.data]), args.split, args.pieces, gen.vocab, rng, by="family"),
                         args.bars)
    pairs, ranges, velocity_ranges, drums, silent, kept, one_side = [], [], [], [], [], [], []
    for index, h in enumerate(holes):
        piece = h.piece
        hole = h.span
        near = Surroundings(piece, hole, gen.vocab)
        controls = near.controls()
        inferred = {piece.track_of(s): c for s, c in controls.items()}
        both = {piece.track_of(s) for s, c in controls.items() if near.both_sides(s, c)}
        entering = {piece.track_of(s) for s, c in controls.items() if near.held_to(s, c)} - both
        drum_track = piece.track_of(gen.vocab.drum_slot) if gen.vocab.drum_slot in piece.slots else None
        # inferred: drums kept, silent tracks silent, the density of tracks playing on both sides kept
        made = gen.piece(gen.infill(piece, h.region, 1, SAMPLING, args.seed + index, source="sampled")[0].score)
        around = near.notes
        for track, c in inferred.items():
            got, _, notes, positions, sizes = achieved(made, track, hole, h.bars)
            if c.density == 0:
                silent.append({"source": h.source, "hole": index, "track": track, "notes": got * h.bars})
            if track == drum_track and (c.density or 0) >= MIN_AROUND_DENSITY:
                drums.append({"source": h.source, "hole": index, "onsets_per_bar": got, "around": c.density})
            if track in both:
                (_, fewest, most), = onset_windows({track: c}, h.bars, INFERRED_TOLERANCE)
                melodic = track != drum_track and c.low is not None and c.high is not None
                kept.append({"source": h.source, "hole": index, "track": track, "around": c.density,
                             "onsets_per_bar": got, "inside": fewest <= round(got * h.bars) <= most,
                             "notes": len(notes) if melodic else 0,
                             "in_pitches": sum(c.low - INFERRED_MARGIN <= n.pitch <= c.high + INFERRED_MARGIN
                                               for n in notes) if melodic else 0, "onsets": len(positions),
                             "on_rhythm": int(np.isin(positions, around[around[:, TRACK] == piece.slot_of(track), POS]).sum()),
                             "in_chord": int((sizes <= (c.chord or 0)).sum())})
            if track in entering:
                slot = piece.slot_of(track)
                mine = around[around[:, TRACK] == slot]
                most = near.most_onsets(slot, h.bars)
                melodic = track != drum_track
                low, high = int(mine[:, PITCH].min()) - INFERRED_MARGIN, int(mine[:, PITCH].max()) + INFERRED_MARGIN
                original = piece.notes[hole.contains(piece.notes, gen.vocab) & (piece.notes[:, TRACK] == slot)]
                one_side.append({"source": h.source, "hole": index, "track": track, "most": most,
                                 "onsets_per_bar": got, "inside": round(got * h.bars) <= most,
                                 "notes": len(notes), "original_notes": len(original),
                                 "in_pitches": sum(low <= n.pitch <= high for n in notes) if melodic else len(notes),
                                 "onsets": len(positions), "on_rhythm": int(np.isin(positions, mine[:, POS]).sum()),
                                 "in_chord": int((sizes <= (c.chord or 0)).sum())})
        # asked: around what each track plays
        asked: dict[int, TrackControls] = {}
        for track, c in inferred.items():
            if (c.density or 0) < MIN_AROUND_DENSITY:
                continue
            density = float(c.density * 2 ** rng.uniform(-1, 1))
            loudness = float(round(np.clip((c.loudness or 80) + rng.uniform(-30, 30), 20, 120)))
            low = high = None
            if track != drum_track and c.low is not None and rng.random() < 0.5:
                width = int(rng.integers(12, 25))
                first = max(c.low - 6, 0)  # windows that overlap the track's own range
                low = int(rng.integers(first, max(c.high - width + 7, first + 1)))
                high = low + width
            vel_low = vel_high = None
            if rng.random() < 0.5:
                width = int(rng.integers(20, 41))
                vel_low = int(np.clip(round(loudness) - int(rng.integers(0, width + 1)), 1, round(loudness)))
                vel_high = int(np.clip(vel_low + width, round(loudness), 127))
            asked[track] = TrackControls(density=density, loudness=loudness, low=low, high=high, vel_low=vel_low,
                                         vel_high=vel_high)
        if not asked:
            continue
        made = gen.piece(gen.infill(piece, h.region, 1, SAMPLING, args.seed + 7919 + index, controls=asked,
                                    source="sampled")[0].score)
        for track, c in asked.items():
            got, loud, notes, *_ = achieved(made, track, hole, h.bars)
            pairs.append({"source": h.source, "hole": index, "track": track, "asked_density": c.density,
                          "density": got, "asked_loudness": c.loudness, "loudness": loud})
            if c.low is not None:
                inside = sum(c.low <= n.pitch <= c.high for n in notes)
                ranges.append({"source": h.source, "hole": index, "track": track, "notes": len(notes), "inside": inside})
            if c.vel_low is not None:
                inside = sum(c.vel_low <= n.velocity <= c.vel_high for n in notes)
                velocity_ranges.append({"source": h.source, "hole": index, "track": track, "notes": len(notes),
                                        "inside": inside})
        console.print(f"hole {index + 1}/{len(holes)} ({h.source}): {len(asked)} tracks asked", highlight=False)

    def corr(a: list, b: list) -> float:
        ok = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        return float(np.corrcoef(*zip(*ok))[0, 1]) if len(ok) > 2 else float("nan")

    rows = []
    for source in ["all", *sorted({p["source"] for p in pairs})]:
        mine = [p for p in pairs if source in ("all", p["source"])]
        rng_rows = [r for r in ranges if source in ("all", r["source"])]
        vel_rows = [r for r in velocity_ranges if source in ("all", r["source"])]
        dr = [d for d in drums if source in ("all", d["source"])]
        sil = [s for s in silent if source in ("all", s["source"])]
        both_rows = [k for k in kept if source in ("all", k["source"])]
        one_rows = [k for k in one_side if source in ("all", k["source"])]
        rows.append({
            "source": source, "pairs": len(mine),
            "density_r": corr([p["asked_density"] for p in mine], [p["density"] for p in mine]),
            "density_log_r": corr([np.log1p(p["asked_density"]) for p in mine], [np.log1p(p["density"]) for p in mine]),
            "loudness_r": corr([p["asked_loudness"] for p in mine], [p["loudness"] for p in mine]),
            "in_pitch_range": sum(r["inside"] for r in rng_rows) / max(sum(r["notes"] for r in rng_rows), 1),
            "range_tracks": len(rng_rows),
            "in_velocity_range": sum(r["inside"] for r in vel_rows) / max(sum(r["notes"] for r in vel_rows), 1),
            "velocity_tracks": len(vel_rows),
            "drum_holes": len(dr), "drums_present": sum(d["onsets_per_bar"] > 0 for d in dr) / max(len(dr), 1),
            "silent_tracks": len(sil), "silent_kept": sum(s["notes"] == 0 for s in sil) / max(len(sil), 1),
            "both_sides_tracks": len(both_rows),
            "inferred_density_r": corr([k["around"] for k in both_rows], [k["onsets_per_bar"] for k in both_rows]),
            "in_inferred_window": sum(k["inside"] for k in both_rows) / max(len(both_rows), 1),
            "in_inferred_pitches": sum(k["in_pitches"] for k in both_rows) / max(sum(k["notes"] for k in both_rows), 1),
            "on_inferred_rhythm": sum(k["on_rhythm"] for k in both_rows) / max(sum(k["onsets"] for k in both_rows), 1),
            "in_inferred_chord": sum(k["in_chord"] for k in both_rows) / max(sum(k["onsets"] for k in both_rows), 1),
            "one_side_tracks": len(one_rows),
            "one_side_under_most": sum(k["inside"] for k in one_rows) / max(len(one_rows), 1),
            "one_side_in_pitches": sum(k["in_pitches"] for k in one_rows) / max(sum(k["notes"] for k in one_rows), 1),
            "one_side_on_rhythm": sum(k["on_rhythm"] for k in one_rows) / max(sum(k["onsets"] for k in one_rows), 1),
            "one_side_notes": sum(k["notes"] for k in one_rows),
            "one_side_original_notes": sum(k["original_notes"] for k in one_rows),
        })
    table = Table(title=f"control adherence: {len(holes)} holes of {args.bars} bars, {time.perf_counter() - began:.0f} s")
    table.add_column("measure")
    for row in rows:
        table.add_column(row["source"], justify="right")
    for key in list(rows[0])[1:]:
        table.add_row(key, *(f"{r[key]:.3f}" if isinstance(r[key], float) else str(r[key]) for r in rows))
    console.print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "holes": len(holes), "summary": rows,
                                          "pairs": pairs, "ranges": ranges, "velocity_ranges": velocity_ranges,
                                          "drums": drums, "silent": silent, "kept": kept,
                                          "one_side": one_side}, indent=1,
                                         default=float))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
