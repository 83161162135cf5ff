"""The one base class of the errors Harmonixr raises for bad input or impossible requests.

The command line turns a :class:`HarmonixrError` into ``error: <message>`` and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarmonixrError(ValueError):
    """Bad input, a bad setting or a request that cannot be carried out; the message says which."""
