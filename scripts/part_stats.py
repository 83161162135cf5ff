"""Write what the training data's parts play into a checkpoint that predates it: each GM program's
pitches, onsets per bar and chord size, and each style's drum kit, groove and velocity repeats, and its melodic parts' velocities.

The trainer stores ``program_parts``, ``drum_kits``, ``drum_grooves``, ``drum_repeats`` and
``melodic_velocities`` (:func:`harmonixr.data.stats.program_parts`,
:func:`~harmonixr.data.stats.drum_kits`, :func:`~harmonixr.data.stats.drum_grooves`,
:func:`~harmonixr.data.stats.drum_repeats`, :func:`~harmonixr.data.stats.melodic_velocities` of its
training split) in every checkpoint's ``config.json``; a part written from nothing (``harmonixr
add-track``, ``generate``) keeps to its program's, a drum part to its style's kit and groove. A
checkpoint trained before that gets them from the same functions on the same data:

    python scripts/part_stats.py models/harmonixr-small    # its config's data folders, train split
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harmonixr.data.corpus import Corpus
from harmonixr.data.stats import drum_grooves, drum_kits, drum_repeats, melodic_velocities, program_parts
from harmonixr.models.checkpoint import CONFIG_FILE, config_text, read_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()
    config = read_config(args.checkpoint)
    corpus = Corpus(config["train"]["data"]["folders"])
    config["program_parts"] = program_parts(corpus)
    config["drum_kits"] = drum_kits(corpus)
    config["drum_grooves"] = drum_grooves(corpus)
    config["drum_repeats"] = drum_repeats(corpus)
    config["melodic_velocities"] = melodic_velocities(corpus)
    (args.checkpoint / CONFIG_FILE).write_text(config_text(config))
    print(f"{args.checkpoint / CONFIG_FILE}: the parts of {len(config['program_parts'])} programs, "
          f"the drum kits and grooves of {len(config['drum_kits'])} and {len(config['drum_grooves'])} styles")


if __name__ == "__main__":
    main()
