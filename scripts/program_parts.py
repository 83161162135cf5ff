"""Write what each GM program's parts play (pitches, onsets per bar, chord size) into a checkpoint that predates it.

The trainer stores ``program_parts`` (:func:`harmonixr.data.stats.program_parts` of its training
split) in every checkpoint's ``config.json``; a part written from nothing (``harmonixr add-track``,
``generate``) keeps to its program's. A checkpoint trained before that gets them from the same
function on the same data:

    python scripts/program_parts.py models/harmonixr-small    # its config's data folders, train split
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harmonixr.data.corpus import Corpus
from harmonixr.data.stats import program_parts
from harmonixr.models.checkpoint import CONFIG_FILE, read_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()
    config = read_config(args.checkpoint)
    config["program_parts"] = program_parts(Corpus(config["train"]["data"]["folders"]))
    (args.checkpoint / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    print(f"{args.checkpoint / CONFIG_FILE}: the parts of {len(config['program_parts'])} programs")


if __name__ == "__main__":
    main()
