"""Harmonixr: symbolic music (MIDI) generation with Transformers.

The data layer lives in :mod:`harmonixr.data`; the main entry points are
:func:`harmonixr.data.prepare.prepare`, :class:`harmonixr.data.tokenize.HarmonixrTokenizer`
and :class:`harmonixr.data.shards.TokenShards`.
"""

__version__ = "0.1.0"
