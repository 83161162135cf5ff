"""The statistical baseline: an interpolated n-gram model with absolute discounting (Kneser-Ney's
discounting, without its continuation counts), over the same examples as the network.

Each row is read as nine tokens: its value, then its eight fields in the order the network writes
them (:data:`~harmonixr.tokens.vocab.FIELDS`); a field's token is predicted from the tokens before
it, so a note's pitch is predicted from its track and time and from the notes before it, as far as
the order reaches.

    P_k(w | h) = max(c(h w) - D_k, 0) / c(h) + D_k * N1+(h .) / c(h) * P_{k-1}(w | h')

with ``h'`` the context shortened by one token, ``P_0`` uniform over the vocabulary, and
``D_k = n1 / (n1 + 2 n2)`` from the counts of k-grams seen once and twice. A context never seen
backs off entirely to the shorter one. n-grams are packed into int64 keys (``bits`` bits per token)
and counted with ``np.unique``; lookups are ``np.searchsorted``, so fitting millions of tokens and
scoring whole test sets are vectorised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from harmonixr.errors import HarmonixrError
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, FIELD_COLUMNS, FIELDS, NOTE, NoteVocab

READ = (COL["value"], *FIELD_COLUMNS)  # the columns a row is read as, in order

NGRAM_FILE, NGRAM_META = "ngram.safetensors", "ngram.json"


def flatten(example: Rows, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (T * 9,), learned (T * 9,) bool) of an example's rows: a row's value and fields,
    each column's values shifted by its offset; learned: the fields the network learns."""
    rows = example.rows[:, READ]
    ids = (rows + offsets[None, :]).reshape(-1)
    learned = np.zeros_like(rows, dtype=bool)
    learned[:, 1:] = example.target[:, None] & (rows[:, 1:] > 0)
    return ids.astype(np.int64), learned.reshape(-1)


def column_offsets(vocab: NoteVocab) -> tuple[np.ndarray, int]:
    sizes = [vocab.sizes["value"], *(vocab.sizes[f] for f in FIELDS)]
    return np.cumsum([0, *sizes[:-1]]).astype(np.int64), int(sum(sizes))


class NGramModel:
    """Order-``order`` token model; :meth:`fit` on examples, :meth:`field_bits` of their learned fields."""

    def __init__(self, vocab: NoteVocab, order: int = 6) -> None:
        self.vocab = vocab
        self.offsets, vocab_size = column_offsets(vocab)
        self.vocab_size, self.order = vocab_size, order
        self.bits = int(np.ceil(np.log2(vocab_size + 1)))
        if self.bits * order > 62:
            raise HarmonixrError(f"order {order} with a {vocab_size}-token vocabulary does not fit 62-bit keys")
        self.tables: dict[str, np.ndarray] = {}
        self.discount = np.zeros(order + 1)

    def _keys(self, ids: np.ndarray, positions: np.ndarray, length: int) -> np.ndarray:
        """Packed keys of ``ids[p - length + 1 : p + 1]`` for each p (tokens before 0 read as 0)."""
        key = np.zeros(len(positions), dtype=np.int64)
        for back in range(length - 1, -1, -1):
            at = positions - back
            tok = np.where(at >= 0, ids[np.maximum(at, 0)], 0).astype(np.int64)
            key = (key << self.bits) | tok
        return key

    def _grams(self, examples: Iterable[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """For each order k, the packed k-grams ending at every learned token of ``examples``
        ((tokens, learned) pairs of :func:`flatten`)."""
        per_order: list[list[np.ndarray]] = [[] for _ in range(self.order + 1)]
        for ids, learned in examples:
            targets = np.flatnonzero(learned)
            for k in range(1, self.order + 1):
                per_order[k].append(self._keys(ids, targets, k))
        return [np.concatenate(chunks) if chunks else np.zeros(0, np.int64) for chunks in per_order]

    def fit(self, examples: Iterable[tuple[np.ndarray, np.ndarray]]) -> NGramModel:
        grams = self._grams(examples)
        for k in range(1, self.order + 1):
            keys, counts = np.unique(grams[k], return_counts=True)
            contexts, first = np.unique(keys >> self.bits, return_index=True)
            totals = np.add.reduceat(counts, first) if len(keys) else counts
            distinct = np.diff(np.append(first, len(keys)))
            n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
            self.discount[k] = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
            self.tables.update({f"{k}.keys": keys, f"{k}.counts": counts, f"{k}.contexts": contexts,
                                f"{k}.totals": totals, f"{k}.distinct": distinct})
        return self

    @staticmethod
    def _lookup(table: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """``values`` at the positions of ``queries`` in the sorted ``table`` (0 where absent)."""
        at = np.minimum(np.searchsorted(table, queries), max(len(table) - 1, 0))
        found = table[at] == queries if len(table) else np.zeros(len(queries), bool)
        return np.where(found, values[at] if len(values) else 0, 0)

    def prob(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """P(ids[p] | the tokens before p) for each p in ``positions``."""
        p = np.full(len(positions), 1.0 / self.vocab_size)
        for k in range(1, self.order + 1):
            t = {name: self.tables[f"{k}.{name}"] for name in ("keys", "counts", "contexts", "totals", "distinct")}
            gram = self._keys(ids, positions, k)
            count = self._lookup(t["keys"], t["counts"], gram)
            total = self._lookup(t["contexts"], t["totals"], gram >> self.bits)
            distinct = self._lookup(t["contexts"], t["distinct"], gram >> self.bits)
            d = self.discount[k]
            seen = total > 0
            safe = np.maximum(total, 1)
            p = np.where(seen, np.maximum(count - d, 0) / safe + d * distinct / safe * p, p)
        return p

    def field_bits(self, example: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(bits (P, K) of each learned row's fields (0 where a row has no such field), is_note (P,))."""
        ids, learned = flatten(example, self.offsets)
        positions = np.flatnonzero(learned)
        bits = np.zeros(len(ids))
        bits[positions] = -np.log2(self.prob(ids, positions))
        per_row = bits.reshape(-1, len(READ))[:, 1:]
        rows = np.flatnonzero(example.target)
        return per_row[rows], example.rows[rows, COL["type"]] == NOTE

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(dict(self.tables), str(folder / NGRAM_FILE))
        meta = {"vocab_size": self.vocab_size, "order": self.order, "discount": self.discount.tolist()}
        (folder / NGRAM_META).write_text(json.dumps(meta))
        self.vocab.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> NGramModel:
        folder = Path(folder)
        meta = json.loads((folder / NGRAM_META).read_text())
        model = cls(NoteVocab.from_file(folder), meta["order"])
        model.discount = np.asarray(meta["discount"])
        model.tables = load_file(str(folder / NGRAM_FILE))
        return model

