"""Write the pitch ranges of each GM program's parts into a checkpoint that predates them.

The trainer stores ``program_ranges`` (:func:`harmonixr.data.stats.program_ranges` of its training
split) in every checkpoint's ``config.json``; a new part (``harmonixr add-track``) keeps to its
program's. A checkpoint trained before that gets them from the same function on the same data:

    python scripts/program_ranges.py models/harmonixr-small    # its config's data folders, train split
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harmonixr.data.corpus import Corpus
from harmonixr.data.stats import program_ranges
from harmonixr.models.checkpoint import CONFIG_FILE, read_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()
    config = read_config(args.checkpoint)
    config["program_ranges"] = program_ranges(Corpus(config["train"]["data"]["folders"]))
    (args.checkpoint / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    print(f"{args.checkpoint / CONFIG_FILE}: the ranges of {len(config['program_ranges'])} programs")


if __name__ == "__main__":
    main()
