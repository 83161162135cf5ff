"""The fine-tuning verbs of the CLI: ``rl``, ``dpo``, ``reward-model`` and ``prefs-rule``."""

from __future__ import annotations

import argparse
import dataclasses
import json

from rich.console import Console
from rich.table import Table

from harmonixr.config import load_yaml
from harmonixr.errors import HarmonixrError


def before_after_table(report: dict, title: str) -> Table:
    """Every number measured both before and after, side by side."""
    table = Table(title=title)
    for column in ("measure", "before", "after"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    before, after = report["before"], report["after"]
    for key in after:
        if isinstance(after[key], (int, float)) and key in before:
            table.add_row(key, f"{before[key]:.4g}", f"{after[key]:.4g}")
    return table


def _rl(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.rl.config import RLConfig
    from harmonixr.rl.trainer import train_rl

    changes = {k: v for k, v in (("out", args.out), ("steps", args.steps)) if v is not None}
    config = dataclasses.replace(load_yaml(RLConfig, args.config), **changes)
    report = train_rl(config, resume=not args.fresh, show_progress=not args.quiet, console=console)
    console.print(before_after_table(report, f"held-out prompts, {report['steps']} RL steps"))
    console.print(f"policy: {config.out}/latest")
    return 0


def _dpo(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.rl.config import DPOConfig
    from harmonixr.rl.dpo import train_dpo

    config = load_yaml(DPOConfig, args.config)
    changes = {k: v for k, v in (("out", args.out), ("prefs", args.prefs)) if v is not None}
    report = train_dpo(dataclasses.replace(config, **changes), show_progress=not args.quiet, console=console)
    console.print(before_after_table(report, "held-out preferences"))
    return 0


def _reward_model(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.rl.preferences import PreferenceStore
    from harmonixr.rl.reward_model import fit_reward_model

    model, numbers = fit_reward_model(PreferenceStore(args.prefs), args.heldout, args.seed)
    model.save(args.out)
    console.print(json.dumps(numbers, indent=1))
    console.print(f"wrote {args.out}")
    return 0


def _prefs_rule(args: argparse.Namespace, console: Console) -> int:
    from harmonixr.rl.synthetic import RULES, rule_preferences

    if args.rule not in RULES:
        known = "; ".join(f"{k}: {r.description}" for k, r in RULES.items())
        raise HarmonixrError(f"unknown rule {args.rule!r}; the rules: {known}")
    count = rule_preferences(args.checkpoint, args.prefs, RULES[args.rule], args.pairs, args.folders, args.seed,
                             show_progress=not args.quiet)
    console.print(f"stored {count} comparisons chosen by the rule {args.rule!r} in {args.prefs}")
    return 0


def add_rl_verbs(verbs: argparse._SubParsersAction, console: Console) -> None:
    def bind(fn):
        return lambda args: fn(args, console)

    r = verbs.add_parser("rl", help="fine-tune with musical rewards (REINFORCE, KL to the supervised model)")
    r.add_argument("--config", required=True, help="YAML file of RLConfig (see configs/rl.yaml)")
    r.add_argument("--out", help="run folder (overrides out)")
    r.add_argument("--steps", type=int, help="overrides steps")
    r.add_argument("--fresh", action="store_true", help="start over even if OUT/latest exists")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(run=bind(_rl))

    d = verbs.add_parser("dpo", help="fine-tune on the stored A/B preferences (DPO)")
    d.add_argument("--config", required=True, help="YAML file of DPOConfig (see configs/dpo.yaml)")
    d.add_argument("--prefs", help="the preference store (overrides prefs)")
    d.add_argument("--out", help="run folder (overrides out)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(run=bind(_dpo))

    m = verbs.add_parser("reward-model", help="fit a Bradley-Terry reward model on the stored preferences")
    m.add_argument("--prefs", default="prefs.sqlite")
    m.add_argument("--out", required=True, help="JSON file of the model (usable as the 'preference' reward term)")
    m.add_argument("--heldout", type=float, default=0.25, help="share of comparisons held out for accuracy")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(run=bind(_reward_model))

    s = verbs.add_parser("prefs-rule", help="fill a preference store with A/B pairs chosen by a stated rule")
    s.add_argument("checkpoint", help="the model whose samples are compared")
    s.add_argument("--rule", required=True, help="quieter, in-key or smoother (an unknown name lists them)")
    s.add_argument("--pairs", type=int, default=200)
    s.add_argument("--prefs", default="prefs.sqlite")
    s.add_argument("--data", dest="folders", action="append", default=None,
                   help="prepared folder for the prompts (repeatable; default: data/corpus-all)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(run=bind(_prefs_rule))
