"""The web studio (Gradio): ``harmonixr serve`` lays out the page and starts the server.

The layout, top to bottom: open a piece (upload, or a bundled example) and see and hear it; the
operations in tabs (rewrite bars, continue, add a track, new piece) with the sampling knobs
beside them; the variations (piano roll against the original with the region marked, audio,
MIDI and WAV downloads, keep / undo / try again); and the A/B comparison whose choice goes to
the SQLite preference store. The handlers are in :mod:`harmonixr.web.page`.

Nothing is fetched from the internet: analytics are off, the theme uses system fonts, and Gradio
serves only the studio's own folder. Uploads above the size limit are refused by Gradio before
they are stored, and again by the studio.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
import gradio as gr  # noqa: E402 - after the environment is set

from harmonixr.generation.demo import EXAMPLES  # noqa: E402
from harmonixr.tokens.vocab import instrument_name  # noqa: E402
from harmonixr.web.page import CONTROL_COLUMNS, NO_RESULTS, Page, refusing  # noqa: E402
from harmonixr.web.studio import Desk, Knobs, Studio  # noqa: E402

PLAYER = gr.WaveformOptions(show_recording_waveform=False)  # the browser's own <audio> player
PROGRAMS = [(f"{p}: {instrument_name(p)}", p) for p in range(128)] + [("drums", -1)]
TIME_SIGNATURES = ["4/4", "3/4", "2/4", "6/8", "12/8", "2/2"]
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: works offline
QUEUE = "studio"  # the one concurrency group of every event (see ``on`` in build_page)
# A refusal (the only warning the studio shows, see page.refusing) is titled so, and only the
# latest one is shown: Gradio 6 titles grouped toasts by their type and stacks them with a count.
REFUSAL_CSS = """
.toast-title.warning { font-size: 0; }
.toast-title.warning::before { content: "Refused"; font-size: var(--text-md); }
.toast-body.warning .toast-messages > div:not(:last-child) { display: none; }
"""
INTRO = ("# Harmonixr studio\nOpen a MIDI file or an example, choose bars and tracks, and let the model write: "
         "pitch, **velocity**, duration and timing. Every result can be heard, downloaded, kept or undone.")


def build_page(studio: Studio) -> gr.Blocks:
    """The studio's page; every event calls a :class:`Page` handler."""
    page = Page(studio)
    limits = studio.limits
    styles = list(studio.gen.vocab.styles)
    with gr.Blocks(title="Harmonixr studio", analytics_enabled=False) as blocks:
        desk = gr.State(Desk())
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            upload = gr.UploadButton("Open a MIDI file", file_types=[".mid", ".midi"], elem_id="upload")
            example = gr.Dropdown([(e.title, key) for key, e in EXAMPLES.items()], value="chorale",
                                  label="Bundled example", elem_id="example", scale=2)
            load = gr.Button("Load example", elem_id="load-example")
            style = gr.Dropdown(styles, value="unknown", label="Style of the piece (what the model is told)",
                                elem_id="style")
        summary = gr.Markdown("No piece open yet.", elem_id="summary")
        roll = gr.Plot(label="Piece (bars numbered; the chosen region is shaded)", elem_id="roll")
        piece_audio = gr.Audio(label="Hear the piece", type="filepath", interactive=False,
                               waveform_options=PLAYER, elem_id="piece-audio")
        prompt = gr.Textbox("", label="Prompt (optional)", elem_id="prompt",
                            info="in words, e.g. 'sad slow jazz piano, sparse, loud drums': style, tempo, mode or key, "
                                 "density, loudness, instruments; how it was read is shown with the results")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Rewrite bars"):
                        region = gr.Textbox("5-8", label="Bars", elem_id="region",
                                            info="bars A-B (from 1, inclusive) or a beat span 5:3-7:1 (end excluded)")
                        tracks = gr.CheckboxGroup([], label="Tracks to rewrite (none ticked: all)", elem_id="tracks")
                        controls = gr.Dataframe(headers=["track", "instrument", *CONTROL_COLUMNS],
                                                datatype=["number", "str", "number", "number", "str", "str"],
                                                interactive=True,
                                                label="Per-track controls of the fill (inferred from the bars around "
                                                      "the region; change a value to steer, 0 notes: silent; "
                                                      "velocities LOW-HIGH, e.g. 60-90, empty: any; rhythm kept: "
                                                      "onsets where the track plays them around the region, free: "
                                                      "anywhere)",
                                                elem_id="controls", wrap=True)
                        with gr.Row():
                            infill = gr.Button("Infill", variant="primary", elem_id="infill")
                            refine = gr.Button("Refine the least likely beats", elem_id="refine")
                    with gr.Tab("Continue"):
                        more = gr.Slider(1, limits.max_new_bars, 4, step=1, label="New bars", elem_id="new-bars")
                        cont = gr.Button("Continue", variant="primary", elem_id="continue")
                    with gr.Tab("Add a track"):
                        program = gr.Dropdown(PROGRAMS, value=33, label="Instrument", elem_id="program")
                        gr.Markdown("Over the bars of *Rewrite bars* (empty there: the whole piece).")
                        add = gr.Button("Add the track", variant="primary", elem_id="add-track")
                    with gr.Tab("New piece"):
                        with gr.Row():
                            new_style = gr.Dropdown(styles, value="pop", label="Style", elem_id="new-style")
                            length = gr.Slider(1, limits.max_new_bars, min(8, limits.max_new_bars), step=1,
                                               label="Bars", elem_id="new-piece-bars")
                        instruments = gr.Dropdown(PROGRAMS, value=[0], multiselect=True, label="Instruments")
                        with gr.Row():
                            tempo = gr.Slider(40, 240, 110, step=1, label="Tempo (bpm)")
                            meter = gr.Dropdown(TIME_SIGNATURES, value="4/4", label="Time signature")
                        with gr.Row():
                            density = gr.Number(0, label="Notes per bar (0: any)", minimum=0)
                            loudness = gr.Slider(0, 127, 0, step=1, label="Mean velocity (0: any)")
                        generate = gr.Button("Write a new piece", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                gr.Markdown("### Sampling")
                knobs = Knobs()  # the sampling defaults of the CLI and the API
                temperature = gr.Slider(0.5, 1.5, knobs.temperature, step=0.05, label="Temperature", elem_id="temperature")
                top_p = gr.Slider(0.5, 1.0, knobs.top_p, step=0.01, label="Top-p", elem_id="top-p")
                seed = gr.Number(knobs.seed, precision=0, label="Seed (the same seed gives the same music)", elem_id="seed")
                variations = gr.Slider(1, limits.max_variations, knobs.variations, step=1, label="Variations",
                                       elem_id="variations")
        gr.Markdown("## Variations")
        result_text = gr.Markdown(NO_RESULTS, elem_id="result-text")
        pick = gr.Radio([], label="Show variation", elem_id="variation")
        with gr.Row():
            whole = gr.Checkbox(False, label="Show the whole piece (else the region with 2 bars around it)",
                                elem_id="whole-piece")
        result_roll = gr.Plot(label="Original (top) and variation (bottom), region shaded", elem_id="result-roll")
        with gr.Row():
            result_audio = gr.Audio(label="Hear the region (with bars around it)", type="filepath", interactive=False,
                                    waveform_options=PLAYER, elem_id="result-audio")
            files = gr.File(label="Download MIDI and WAV", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Row():
            keep = gr.Button("Keep this variation", variant="primary", elem_id="keep")
            undo = gr.Button("Undo", elem_id="undo")
            again = gr.Button("Try again (next seeds)", elem_id="again")
        gr.Markdown("## Compare two variations")
        with gr.Row():
            a_pick = gr.Dropdown([], label="A", elem_id="pick-a", allow_custom_value=True)  # emptied with the results
            b_pick = gr.Dropdown([], label="B", elem_id="pick-b", allow_custom_value=True)
            who = gr.Textbox(label="Your name (stored with the choice)", elem_id="who")
        with gr.Row():
            a_audio = gr.Audio(label="A", type="filepath", interactive=False, waveform_options=PLAYER, elem_id="audio-a")
            b_audio = gr.Audio(label="B", type="filepath", interactive=False, waveform_options=PLAYER, elem_id="audio-b")
        with gr.Row():
            a_better = gr.Button("A is better", elem_id="a-better")
            b_better = gr.Button("B is better", elem_id="b-better")
            tie = gr.Button("About the same", elem_id="tie")
        stored = gr.Markdown("", elem_id="stored")

        piece_out = [desk, roll, piece_audio, tracks, summary, style]
        results_out = [pick, result_roll, result_audio, files, a_pick, b_pick, result_text, whole]
        settings = [region, tracks, more, program, new_style, instruments, tempo, meter, density, loudness,
                    temperature, top_p, seed, variations, prompt, controls, length]

        def on(event: Any, handler: Any, inputs: list, outputs: list) -> Any:
            """Every event in one queue, answered in the order sent: the studio holds one model and
            one desk, and a region typed while the last region's table was being drawn must get
            its table after that one, not before it (two handlers at once raced so)."""
            return event(refusing(handler, len(outputs)), inputs, outputs, concurrency_id=QUEUE)

        def then_mark(done: Any) -> Any:
            """After ``done`` (a piece opened, kept or undone), the roll and controls of its region."""
            return done.then(refusing(page.mark, 2), [desk, region, tracks], [roll, controls], concurrency_id=QUEUE)

        then_mark(on(upload.upload, page.upload, [desk, upload, style, region], piece_out + results_out))
        then_mark(on(load.click, page.example, [desk, example, region], piece_out + results_out))
        on(region.change, page.mark, [desk, region, tracks], [roll, controls])
        on(tracks.input, page.mark, [desk, region, tracks], [roll, controls])
        for button, op in ((infill, "infill"), (refine, "refine"), (cont, "continue"), (add, "add-track"),
                           (generate, "generate")):
            on(button.click, page.run, [desk, gr.State(op), *settings], [desk, *results_out, seed, stored])
        on(again.click, page.again, [desk], [desk, *results_out, seed, stored])
        on(pick.input, page.show, [desk, pick, whole], [desk, *results_out])
        on(whole.input, page.show, [desk, pick, whole], [desk, *results_out])
        on(style.input, page.restyle, [desk, style, region], piece_out)
        then_mark(on(keep.click, page.keep, [desk, pick, region], piece_out + results_out))
        then_mark(on(undo.click, page.undo, [desk, region], piece_out + results_out))
        for picker in (a_pick, b_pick):
            on(picker.change, page.compare, [desk, a_pick, b_pick], [a_audio, b_audio])
        for button, choice in ((a_better, "a"), (b_better, "b"), (tie, "tie")):
            on(button.click, page.prefer, [desk, a_pick, b_pick, gr.State(choice), who], [stored])
    return blocks


def serve(studio: Studio, block: bool = True) -> gr.Blocks:
    """Start the server of ``studio`` (``block``: until interrupted)."""
    blocks = build_page(studio)
    blocks.queue(default_concurrency_limit=1)  # one generation at a time (the studio holds one model)
    blocks.launch(server_name=studio.config.host, server_port=studio.config.port, prevent_thread_lock=not block,
                  max_file_size=studio.limits.max_upload_bytes, allowed_paths=[str(studio.workdir)],
                  ssr_mode=False, show_error=True, quiet=False, theme=THEME, css=REFUSAL_CSS, footer_links=[],
                  run_history=False)
    return blocks
