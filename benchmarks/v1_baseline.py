"""The REMI model this project shipped before the note-level one, as a baseline row: its bits per
note on the same test pieces, its tokens per note, and its export to ``transformers``.

Its code is not in this tree any more (one pipeline): the script checks out the commit that
shipped it (``V1_COMMIT``) into ``runs/v1-src`` with ``git worktree`` and runs that commit's own
code and model there, in this environment, on the test split of ``--data`` (every source, up to
``--pieces`` pieces each). Writes ``results/v1_baseline.json`` and ``runs/v1/hf`` (the model as
``LlamaForCausalLM``, for ``benchmarks/sampling.py``).

    python benchmarks/v1_baseline.py --pieces 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V1_COMMIT = "3c352d3"  # the last commit of the REMI model (models/harmonixr-small, "spm" fine-tune)

# Run by the old code: bits per note by token group, per source, on the given MIDI files.
SCORE = r"""
import json, sys
from harmonixr.data.events import Vocab
from harmonixr.data.quantize import normalize
from harmonixr.data.validate import load_midi
from harmonixr.config import LimitsConfig
from harmonixr.evaluation.likelihood import Scorer
from harmonixr.models.structure import Structure
from harmonixr.training.batches import scoring_windows
from harmonixr.training.checkpoint import load_checkpoint
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker

model_dir, files = sys.argv[1], json.loads(open(sys.argv[2]).read())
loaded = load_checkpoint(model_dir)
tok = loaded.tokenizer
vocab = Vocab(tok)
scorer = Scorer(vocab, Structure(vocab))
maker = ExampleMaker(vocab, loaded.model.cfg.max_len, ObjectiveConfig())
out, tokens, notes, skipped = {}, 0, 0, []
for item in files:
    try:
        normalized, _ = normalize(load_midi(item["path"], LimitsConfig()), tok, item["path"])
        style = item["style"] if item["style"] in tok.styles else "unknown"
        ids = tok.encode(normalized, style)
    except Exception as exc:
        skipped.append(f"{item['path']}: {exc}")
        continue
    windows = list(scoring_windows(maker, ids))
    tally = scorer.score(loaded.model, windows, [item["source"]] * len(windows))
    for key, t in tally.items():
        mine = out.setdefault(key, {"bits": {}, "notes": 0, "tokens": 0})
        for g, b in t.bits.items():
            mine["bits"][g] = mine["bits"].get(g, 0.0) + b
        mine["notes"] += t.notes
        mine["tokens"] += t.tokens
print(json.dumps({"tally": out, "skipped": skipped}))
"""


def worktree() -> Path:
    src = ROOT / "runs" / "v1-src"
    if not (src / "src" / "harmonixr").is_dir():
        src.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(src), V1_COMMIT],
                       check=True)
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--pieces", type=int, default=30, help="test pieces per source family")
    parser.add_argument("--out", default="results/v1_baseline.json")
    args = parser.parse_args()
    from harmonixr.data.corpus import Corpus
    from harmonixr.evaluation.compare import per_source
    from harmonixr.generation.piece import family

    corpus = Corpus([args.data])
    files = [{"path": r["path"], "style": r["style"], "source": family(r)}  # the same pieces and labels as compare
             for _, r in per_source(corpus.rows("test"), args.pieces)]
    src = worktree()
    runs = ROOT / "runs" / "v1"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "files.json").write_text(json.dumps(files))
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    model = src / "models" / "harmonixr-small"
    done = subprocess.run([sys.executable, "-c", SCORE, str(model), str(runs / "files.json")], env=env, check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = {}
    for source, t in result["tally"].items():
        notes = max(t["notes"], 1)
        rows[source] = {"bits_per_note": sum(t["bits"].values()) / notes, "notes": t["notes"],
                        **{g: b / notes for g, b in t["bits"].items()}, "tokens_per_note": t["tokens"] / notes}
    hf = runs / "hf"
    shutil.rmtree(hf, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "harmonixr", "export", str(model), "--format", "hf", "--out", str(hf)],
                   env=env, check=True, capture_output=True)
    report = {"commit": V1_COMMIT, "pieces_per_source": args.pieces, "by_source": rows,
              "tokens_per_note": rows["all"]["tokens_per_note"], "skipped": result["skipped"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    (runs / "v1_baseline.json").write_text(json.dumps(report, indent=1))
    for source, row in sorted(rows.items()):
        print(f"{source:>12}: {row['bits_per_note']:.3f} bits per note over {row['notes']:,} notes "
              f"({row['tokens_per_note']:.2f} tokens per note)")
    print(f"wrote {args.out} and {hf}")


if __name__ == "__main__":
    main()
