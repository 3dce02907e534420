"""Progress bars that suit both a terminal and a log file: one helper, `progress`.

On a terminal a bar redraws at most twice a second. Written to a file or a pipe (a cluster
job's log, ``cmd > log 2>&1``), a redrawing bar packs hundreds of ``\\r`` updates into the
log; there the bar prints nothing while it runs and one plain line when the pass ends
(``epoch 3/10: 30/30 in 00:12, 2.47batch/s, loss=0.61``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

# a terminal bar redraws at most this often (tqdm's 0.1 s floods slow terminals and ssh)
TERMINAL_INTERVAL_S = 0.5
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} in {elapsed}, {rate_fmt}{postfix}"


class LineProgress(tqdm):
    """A tqdm that stays silent until it closes, then writes one line (for non-terminals).

    It keeps tqdm's interface (`update`, `set_postfix`, `tqdm.write`), so code that drives a
    bar does not care which kind it got.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["leave"] = True  # the closing line is the point, even for a transient bar
        kwargs.setdefault("bar_format", LINE_FORMAT)
        kwargs["mininterval"] = kwargs["maxinterval"] = float("inf")
        self._closing = False
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._closing and msg is None:
            self.fp.write(self.__str__())
            self.fp.flush()
        return True

    def close(self) -> None:
        self._closing = True
        super().close()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(
    iterable: Iterable[T] | None = None, desc: str = "", total: float | None = None, **kwargs: Any
) -> tqdm:
    """A progress bar over `iterable` (or a manual one with `total`), labelled `desc`.

    A redrawing bar on a terminal (at most every 0.5 s), one line per pass otherwise (a file,
    a pipe, a notebook's captured output counts as a terminal only if it says so). Other
    keyword arguments go to tqdm (``unit``, ``leave``, ``disable``, ``position``, ``file``).
    """
    stream = kwargs.get("file") or sys.stderr
    if _is_terminal(stream):
        kwargs.setdefault("mininterval", TERMINAL_INTERVAL_S)
        return tqdm(iterable, desc=desc, total=total, **kwargs)
    return LineProgress(iterable, desc=desc, total=total, **kwargs)
