"""Warnings while a model predicts: recorded under a two-filter list, then issued again under
the process's own filters.

scikit-learn (1.7 and later) re-applies every ``warnings`` filter in each joblib task, one task
per tree of a forest: with the ~16 filters a serving process holds, that is half of a 500-tree
forest's one-row prediction. :class:`DeferredWarnings` (one instance, :data:`DEFERRED_WARNINGS`)
makes the filter list short while the model runs without silencing anything.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NamedTuple, TextIO, cast


class _WhileAModelRuns(Warning):
    """Never raised: the category of the filter that marks the temporary filter list."""


class _Marker(tuple[str, None, type[Warning], None, int]):
    """The marking filter. scikit-learn iterates each filter of the list it captured once per
    joblib task, to re-apply it: counting the iterations of this one counts the tasks (the
    ``warnings`` machinery reads filters by index, and copies compare equal to it)."""

    tasks = 0

    def __iter__(self) -> Iterator[Any]:
        _Marker.tasks += 1
        return super().__iter__()


#: first in the filter list while a model runs; it matches nothing
_MARKER = _Marker(("ignore", None, _WhileAModelRuns, None, 0))
#: the filter list while a model runs: every warning reaches the recorder
_TEMPORARY_FILTERS = [_MARKER, ("always", None, Warning, None, 0)]


class _Caught(NamedTuple):
    message: Warning | str
    category: type[Warning]
    filename: str
    lineno: int


class DeferredWarnings:
    """Calls a model with its warnings recorded, then issues them again under the filters in force.

    Why: scikit-learn (1.7 and later) copies ``warnings.filters`` into every task it hands to
    joblib and re-applies them one by one (``sklearn.utils.parallel._FuncWrapper``); a forest
    predicts one task per tree even with ``n_jobs=None``. A serving process holds ~16 filters
    (numpy, scipy, urllib3, requests and kserve add them on import), so re-applying them is half
    of a 500-tree forest's one-row ``predict``; two filters cost almost nothing.

    Why it is safe: no warning is silenced and no filter is added. Each recorded warning goes
    through ``warnings.warn_explicit`` with the module and ``__warningregistry__`` its own code
    would have used, so the process's filters (ignore, default, once, module, error) decide as
    before; only the moment moves to just after the call ("error" raises then). Warnings that
    other threads raise during the call are recorded and re-issued the same way.

    Threads: ``catch_warnings`` (which scikit-learn enters per task, in joblib's worker threads
    too) saves and restores the *binding* of ``warnings.filters``, so interleaved blocks in two
    threads can leave a copy of whatever list was bound. The filter list is therefore changed and
    restored in place, and a left-over copy of the temporary list (recognised by its marker) is
    replaced by the restored list at the end of the call or, if a thread still held one, at the
    start of the next: at worst, until then, another thread's warnings are shown that a filter
    would have ignored. The recorder passes warnings on to the previous ``showwarning`` whenever
    no call is running, wherever a thread leaves it. One call at a time: meanwhile other threads
    make the plain call; :meth:`exclusive` keeps the fast path off while a thread runs model code
    of its own (an explainer).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caught: list[_Caught] | None = None
        self._shown_by: Callable[..., Any] = warnings.showwarning
        self._restored: list[Any] | None = None
        self._modules = _ModulesByFile()

    def call(self, function: Callable[[Any], Any], argument: Any) -> tuple[Any, int | None]:
        """``function(argument)`` and how many scikit-learn joblib tasks it ran (None: not
        counted, another thread's call was under way and this one was made plainly)."""
        if not self._lock.acquire(blocking=False):
            return function(argument), None
        try:
            filters = self._filters_in_force()
            kept = filters[:]
            if warnings.showwarning is not self:
                self._shown_by = warnings.showwarning
            caught: list[_Caught] = []
            self._caught = caught
            warnings.showwarning = self
            filters[:] = _TEMPORARY_FILTERS
            _Marker.tasks = 0
            try:
                return function(argument), _Marker.tasks
            finally:
                filters[:] = kept
                self._restored = filters
                if _is_temporary(warnings.filters):
                    warnings.filters = filters
                self._caught = None
                if warnings.showwarning is self:
                    warnings.showwarning = self._shown_by
                self._reissue(caught)
        finally:
            self._lock.release()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """While the block runs, :meth:`call` makes plain calls (for model code run in another thread)."""
        with self._lock:
            yield

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """``warnings.showwarning`` while a model runs (and wherever a thread leaves it after)."""
        caught = self._caught
        if caught is not None:
            caught.append(_Caught(message, category, filename, lineno))
        else:
            self._shown_by(message, category, filename, lineno, file, line)

    def _filters_in_force(self) -> list[Any]:
        filters = cast(list[Any], warnings.filters)
        if _is_temporary(filters) and self._restored is not None:
            # a thread's catch_warnings put back a copy of the temporary list after the last call
            warnings.filters = filters = self._restored
        return filters

    def _reissue(self, caught: list[_Caught]) -> None:
        for warning in caught:
            module = self._modules.find(warning.filename)
            if module is None:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
                continue
            # no module_globals: CPython would read the module's whole source for every warning,
            # even an ignored one (linecache finds the line when one is shown)
            warnings.warn_explicit(
                warning.message,
                warning.category,
                warning.filename,
                warning.lineno,
                module=module.__name__,
                registry=vars(module).setdefault("__warningregistry__", {}),
            )


def _is_temporary(filters: Sequence[Any]) -> bool:
    return _MARKER in filters


class _ModulesByFile:
    """The loaded module a source file belongs to (what ``warnings.warn`` takes from the frame)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._indexed = -1

    def find(self, filename: str) -> ModuleType | None:
        name = self._names.get(filename)
        if name is None and len(sys.modules) != self._indexed:
            self._indexed = len(sys.modules)
            self._names = {}
            for module_name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None)
                if isinstance(path, str):
                    self._names[path] = module_name
            name = self._names.get(filename)
        return sys.modules.get(name) if name is not None else None


DEFERRED_WARNINGS = DeferredWarnings()
