"""Faults: checkpoint writes killed at random points, and a crash during the recovery of an earlier
crash. After any of them, ``latest`` loads, complete, as one of the checkpoints that was written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harmonixr.models import checkpoint
from harmonixr.models.checkpoint import build_model, load_checkpoint, read_config, save_checkpoint
from harmonixr.models.config import ModelConfig

# The child writes checkpoint after checkpoint: every weight of checkpoint k equals k.
WRITER = """
import sys, torch
from harmonixr.config import TokenizerSpec
from harmonixr.models.checkpoint import build_model, read_config, save_checkpoint
from harmonixr.models.config import ModelConfig
from harmonixr.tokens.vocab import NoteVocab
tok = NoteVocab(TokenizerSpec())
model = build_model(ModelConfig(d_model=64, n_layers=2, n_heads=4, ffn_hidden=256, head_hidden=64, max_len=128), tok)
path = sys.argv[1]
try:
    step = read_config(path)["step"]
except Exception:
    step = 0
first = step
while True:
    step += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(step)
    save_checkpoint(path, model, tok, {"step": step}, torch.optim.SGD(model.parameters(), lr=0.1), {"step": step})
    if step == first + 1:
        print("ready", flush=True)  # the first write is slow (lazy set-up); the kills land among the fast ones
"""


def tiny(vocab) -> torch.nn.Module:  # noqa: ANN001
    return build_model(ModelConfig(d_model=32, n_layers=1, n_heads=4, ffn_hidden=64, head_hidden=32, max_len=64), vocab)


def assert_whole(path: Path) -> int:
    """``path`` loads, and every weight equals the step its config names; returns that step."""
    loaded = load_checkpoint(path)
    step = loaded.meta["step"]
    for name, tensor in loaded.model.state_dict().items():
        assert torch.all(tensor == step), f"{name} is not all {step}: a torn checkpoint"
    return step


@pytest.mark.slow
def test_checkpoint_writes_killed_at_random_points_never_leave_a_torn_latest(tmp_path) -> None:
    path, rng = tmp_path / "latest", np.random.default_rng(0)
    steps = []
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.6)))  # somewhere inside some write
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        steps.append(assert_whole(path))
    assert steps == sorted(steps) and steps[-1] > 2 * len(steps), steps  # progress is kept across kills


def test_a_crash_while_recovering_from_a_crash_keeps_a_checkpoint(vocab, tmp_path, monkeypatch) -> None:
    model, path = tiny(vocab), tmp_path / "latest"
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1)
    save_checkpoint(path, model, vocab, {"step": 1})
    path.rename(path.with_name("latest.old"))  # crash 1: between the two renames of a swap
    real_rename = Path.rename

    def crash_before_the_new_one_is_in_place(self: Path, target: Path) -> Path:
        if self.name == "latest.tmp":
            raise KeyboardInterrupt("killed")  # crash 2: the next write dies before its last rename
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_before_the_new_one_is_in_place)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(2)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, vocab, {"step": 2})
    monkeypatch.undo()
    assert checkpoint.resolve(path).exists() and assert_whole(path) == 1
    assert read_config(path)["step"] == 1
