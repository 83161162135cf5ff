"""Direct preference optimisation from the preference store (``harmonixr dpo --config configs/dpo.yaml``).

For a comparison with chosen sample w and rejected sample l under one prompt x, DPO minimises

    -log sigmoid(beta * [(log pi(w|x) - log ref(w|x)) - (log pi(l|x) - log ref(l|x))])

with ``ref`` the frozen supervised model (Rafailov et al., 2023): no reward model, no sampling.
A sample is its MIDI as a plain sequence (its header, then its notes, as far as the context holds
them); ``log pi`` sums the bits of every field of its notes and its end.
Ties are left out. A share of the comparisons, chosen by id and seed, is held out: the accuracy
reported is how often a model gives the held-out chosen sample the higher likelihood.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from symusic import Score

from harmonixr.config import to_dict
from harmonixr.data.corpus import Corpus
from harmonixr.data.validate import RejectError
from harmonixr.errors import HarmonixrError
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece
from harmonixr.models.checkpoint import save_checkpoint
from harmonixr.models.transformer import NoteTransformer, field_nll
from harmonixr.progress import progress_bar
from harmonixr.rl.config import DPOConfig
from harmonixr.rl.preferences import Comparison, PreferenceStore
from harmonixr.rl.rollout import load_policy, padded
from harmonixr.rl.synthetic import RULES, generation_prompts
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.prompt import plain


@dataclass
class Pair:
    """One comparison as row sequences (chosen, rejected), each with its learned rows marked."""

    id: int
    chosen: tuple[np.ndarray, np.ndarray]
    rejected: tuple[np.ndarray, np.ndarray]


def sample_rows(gen: Generator, comparison: Comparison, midi: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(rows, learned) of ``midi`` as a plain sequence, cut to the model's context."""
    style = comparison.prompt.get("style", "unknown")
    piece = Piece.from_score(Score.from_midi(midi), gen.vocab, style if style in gen.vocab.styles else "unknown")
    header = piece.header()
    room = gen.max_len - len(piece.slots) - 4
    notes = piece.notes[:room]
    seq = plain(gen.vocab, header, notes, 0, piece.bars_meta(), ends=len(notes) == len(piece.notes))
    return seq.rows, seq.target


def load_pairs(store: PreferenceStore, gen: Generator) -> tuple[list[Pair], list[str]]:
    """Every comparison that is not a tie, as a :class:`Pair` (oldest first), and why each of the
    comparisons left out could not be tokenized."""
    pairs, problems = [], []
    for c in reversed(store.list(with_midi=True)):
        if c.choice == "tie":
            continue
        try:
            a, b = sample_rows(gen, c, c.midi_a), sample_rows(gen, c, c.midi_b)
        except (HarmonixrError, RejectError) as exc:
            problems.append(f"comparison {c.id}: {exc}")
            continue
        pairs.append(Pair(c.id, *((a, b) if c.choice == "a" else (b, a))))
    return pairs, problems


def split_pairs(pairs: list[Pair], heldout: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): a seeded permutation of the ids decides, so a rerun holds out the same ones."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    cut = int(round(heldout * len(pairs)))
    return [pairs[i] for i in order[cut:]], [pairs[i] for i in order[:cut]]


def sequence_logp(model: NoteTransformer, seqs: Sequence[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """(N,) summed log-probability of each sequence's learned rows (every field)."""
    device = next(model.parameters()).device
    rows = padded([r for r, _ in seqs], device)
    target = torch.zeros(rows.shape[:2], dtype=torch.bool, device=device)
    for b, (_, learned) in enumerate(seqs):
        target[b, : len(learned)] = torch.from_numpy(learned)
    nll, _ = field_nll(model, rows, target)  # (P, K), sequences in order
    counts = target[:, 1:].sum(1).tolist()
    return torch.stack([-part.sum() for part in torch.split(nll, counts)])


def pair_logps(model: NoteTransformer, pairs: Sequence[Pair], batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) log-probabilities of every pair, without gradients."""
    chosen, rejected = [], []
    with torch.no_grad():
        for k in range(0, len(pairs), batch):
            chunk = pairs[k : k + batch]
            chosen.append(sequence_logp(model, [p.chosen for p in chunk]))
            rejected.append(sequence_logp(model, [p.rejected for p in chunk]))
    return torch.cat(chosen), torch.cat(rejected)


def ranked(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs whose chosen sample scores higher (log-probability, or implicit reward)."""
    return float((chosen > rejected).float().mean()) if len(chosen) else float("nan")


def rule_value(gen: Generator, corpus: Corpus, config: DPOConfig, rule_name: str | None) -> float | None:
    """Mean value of the store's rule over samples of held-out (test-split) prompts, or None."""
    if rule_name not in RULES or not config.eval_prompts:
        return None
    gen.sampler.weights_changed()
    prompts = generation_prompts(corpus, gen, config.eval_prompts, "test", config.seed + 1)
    values = [RULES[rule_name].value(r.score) for k, p in enumerate(prompts)
              for r in p.run(gen, config.eval_samples, SamplingConfig.unfiltered(), config.seed + k)]
    return float(np.mean(values))


def train_dpo(config: DPOConfig, show_progress: bool = True, console: Console | None = None) -> dict:
    """DPO on the store's comparisons; returns held-out accuracy (and the rule's value) before and after."""
    console = console or Console()
    gen, reference, out = load_policy(config.policy, config.out, config.threads, config.seed)
    store = PreferenceStore(config.prefs)
    pairs, problems = load_pairs(store, gen)
    for problem in problems:
        console.print(f"[yellow]left out {problem}[/yellow]")
    train, heldout = split_pairs(pairs, config.heldout, config.seed)
    if not train or not heldout:
        raise HarmonixrError(f"{config.prefs}: {len(pairs)} comparisons that are not ties; "
                             "DPO needs some to train and some to hold out")
    rules = {c.prompt.get("rule") for c in store.list()}
    rule_name = rules.pop() if len(rules) == 1 else None
    corpus = Corpus(list(config.folders)) if rule_name and config.eval_prompts else None
    console.print(f"{len(train)} training and {len(heldout)} held-out comparisons from {config.prefs}")
    ref_chosen, ref_rejected = pair_logps(reference, train)
    ref_held = pair_logps(reference, heldout)
    before: dict[str, float | None] = {"heldout_accuracy": ranked(*ref_held),
                                       "train_accuracy": ranked(ref_chosen, ref_rejected)}
    if corpus is not None:
        before["rule_value"] = rule_value(gen, corpus, config, rule_name)
    optimizer = torch.optim.AdamW(gen.model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    log = []
    steps = config.epochs * -(-len(train) // config.batch_pairs)
    with progress_bar("dpo steps", steps, show_progress) as advance:
        for epoch in range(config.epochs):
            gen.model.train()
            shuffled = rng.permutation(len(train))
            for start in range(0, len(train), config.batch_pairs):
                order = torch.as_tensor(shuffled[start : start + config.batch_pairs])
                chunk = [train[int(i)] for i in order]
                chosen = sequence_logp(gen.model, [p.chosen for p in chunk])
                rejected = sequence_logp(gen.model, [p.rejected for p in chunk])
                margin = (chosen - ref_chosen[order]) - (rejected - ref_rejected[order])
                loss = -F.logsigmoid(config.beta * margin).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(gen.model.parameters(), config.grad_clip)
                optimizer.step()
                log.append({"epoch": epoch, "loss": loss.item(), "margin": margin.mean().item()})
                advance(1)
    gen.model.eval()
    chosen, rejected = pair_logps(gen.model, heldout)
    after: dict[str, float | None] = {"heldout_accuracy": ranked(chosen, rejected),
                                      "train_accuracy": ranked(*pair_logps(gen.model, train)),
             "implicit_reward_accuracy": ranked(chosen - ref_held[0], rejected - ref_held[1])}
    if corpus is not None:
        after["rule_value"] = rule_value(gen, corpus, config, rule_name)
    save_checkpoint(out / "latest", gen.model, gen.vocab, {"dpo": to_dict(config)})
    report = {"before": before, "after": after, "rule": rule_name, "train_pairs": len(train), "heldout_pairs": len(heldout),
              "left_out": problems, "log": log}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
