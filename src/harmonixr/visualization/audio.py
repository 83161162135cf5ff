"""WAV rendering with the offline General MIDI SoundFont (``TimGM6mb.sf2``, shipped by pretty_midi).

TinySoundFont synthesizes the notes; each track gets its own MIDI channel (drums on channel 10),
its program and its velocities, and the tempo map of the score sets every note's time in seconds.
Nothing is downloaded: the SoundFont is a file inside the installed ``pretty_midi`` package.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
from symusic import Score

from harmonixr.errors import HarmonixrError

SAMPLE_RATE = 44100
DRUM_CHANNEL = 9
TAIL_SECONDS = 1.0  # release after the last note
MAX_SECONDS = 20 * 60  # refuse to render more than this


def soundfont_path() -> Path:
    """The bundled General MIDI SoundFont."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretty_midi's SoundFont is missing (reinstall pretty_midi)")
    return path


class NoRenderer(HarmonixrError):
    """WAV rendering needs TinySoundFont, which ``pip install .`` cannot bring (its dependency pyaudio
    needs the PortAudio headers to build); ``make`` installs it without that dependency."""


def renderer():  # noqa: ANN201 - the tinysoundfont module
    """The TinySoundFont module, or a :class:`NoRenderer` saying how to install it."""
    try:
        import tinysoundfont
    except ImportError:
        raise NoRenderer("WAV rendering needs TinySoundFont: pip install --no-deps tinysoundfont==0.3.7 "
                         "(make does it); the MIDI and PNG files are written without it") from None
    return tinysoundfont


def can_render() -> bool:
    """Whether WAVs can be rendered here (TinySoundFont importable)."""
    try:
        renderer()
    except NoRenderer:
        return False
    return True


def render_audio(score: Score, sample_rate: int = SAMPLE_RATE, gain: float = -6.0,
                 max_seconds: float | None = None) -> np.ndarray:
    """(samples, 2) float32 stereo of ``score``; with ``max_seconds``, its first ``max_seconds``
    only (notes still sounding then are cut), else a refusal beyond :data:`MAX_SECONDS`."""
    tinysoundfont = renderer()

    seconds_score = score.to("second")
    events: list[tuple[float, int, int, int, int]] = []  # (time s, order: off before on, channel, key, velocity)
    melodic_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    synth = tinysoundfont.Synth(samplerate=sample_rate, gain=gain)
    sfid = synth.sfload(str(soundfont_path()))
    melodic = 0
    for track in seconds_score.tracks:
        if track.is_drum:
            channel = DRUM_CHANNEL
        else:  # more than 15 melodic tracks share channels
            channel, melodic = melodic_channels[melodic % len(melodic_channels)], melodic + 1
        synth.program_select(channel, sfid, 0, 0 if track.is_drum else track.program, track.is_drum)
        for note in track.notes:
            if max_seconds is not None and note.time >= max_seconds:
                continue
            off = note.time + max(note.duration, 0.02)
            events.append((note.time, 1, channel, note.pitch, note.velocity))
            events.append((off if max_seconds is None else min(off, max_seconds), 0, channel, note.pitch, 0))
    events.sort()
    end = (events[-1][0] if events else 0.0) + TAIL_SECONDS
    if end > MAX_SECONDS:
        raise HarmonixrError(f"{end:.0f} s of audio is more than the {MAX_SECONDS} s the renderer allows")
    chunks, now = [], 0
    for time_s, is_on, channel, key, velocity in events:
        sample = int(time_s * sample_rate)
        if sample > now:
            chunks.append(np.frombuffer(synth.generate(sample - now), dtype=np.float32))
            now = sample
        if is_on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    chunks.append(np.frombuffer(synth.generate(int(end * sample_rate) - now), dtype=np.float32))
    return np.concatenate(chunks).reshape(-1, 2)


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, mono: bool = False) -> bytes:
    """16-bit WAV bytes of (samples, 2) float audio (mixed down to one channel when ``mono``);
    scaled down only where it would clip."""
    if mono:
        audio = audio.mean(1, keepdims=True)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:
        audio = audio / peak
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(audio.shape[1])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes((audio * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(score: Score, path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> Path:
    """Render ``score`` (its first ``max_seconds`` at most) and write a 16-bit stereo WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(render_audio(score, sample_rate, max_seconds=max_seconds), sample_rate))
    return path
