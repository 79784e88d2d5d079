"""Data flow between steps: which value each step needs and which earlier step provides it.

Steps are replayed in notebook order, as a top-to-bottom run would execute them. A name a
step reads before binding it is resolved to its reaching definition: a pipeline parameter,
the prelude (which every step runs), code to re-run (imports, functions and classes are
re-executed rather than shipped), or the output artifact of an earlier step.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from nb2pipe.analysis.kinds import Provenance, provenance, qualify
from nb2pipe.analysis.magics import gc_paused
from nb2pipe.analysis.names import CellFacts, Event
from nb2pipe.analysis.origins import Origin
from nb2pipe.analysis.scopes import FunctionFacts
from nb2pipe.errors import Location
from nb2pipe.ir import Cell, CodeBlock

if TYPE_CHECKING:
    from typing_extensions import TypeIs

PARAMETER = "<parameter>"
PRELUDE = "<prelude>"
_REPLAYED_ORIGINS = frozenset({"import", "def", "class", "lambda"})
#: Names a notebook kernel provides without an import; the step runtime provides them too.
NOTEBOOK_BUILTINS = frozenset(dir(builtins)) | {"display", "get_ipython", "In", "Out", "__name__"}
#: Library functions that shuffle their first argument in place.
_SHUFFLING_FUNCTIONS = frozenset({"random.shuffle", "numpy.random.shuffle"})


@dataclass(frozen=True)
class AnalyzedCell:
    cell: Cell
    code: CodeBlock
    facts: CellFacts


class Binding(NamedTuple):
    """What a name holds where a unit reads it: who made it, from what, and where. (A named
    tuple: a big cell makes one per assignment, and a frozen dataclass costs more to build.)"""

    provider: str
    origin: Origin
    provenance: Provenance
    location: Location
    replay: CodeBlock | None = None
    facts: FunctionFacts | None = None
    deleted: bool = False

    @property
    def from_step(self) -> bool:
        """Made by a notebook step, not handed to every step (a parameter or the prelude)."""
        return self.provider not in (PARAMETER, PRELUDE)


def computed_by_step(binding: Binding | None) -> TypeIs[Binding]:
    """A value a step computes and saves for steps below: present, not deleted, not a
    parameter or prelude value, and not a function or class replayed in each step."""
    return binding is not None and not binding.deleted and binding.from_step and binding.replay is None


@dataclass(frozen=True)
class Read:
    name: str
    strong: bool
    location: Location


@dataclass
class UnitResult:
    """What one unit (the prelude or a step) reads from outside and leaves behind."""

    reads: dict[str, Read] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    deleted: dict[str, Location] = field(default_factory=dict)


class Simulator:
    """Runs one unit's events against the bindings that reach it."""

    def __init__(self, unit: str, notebook: str, external: Mapping[str, Binding], imports: Mapping[str, str]):
        self.unit = unit
        self.notebook = notebook
        self.external = external
        self.imports = imports
        self.result = UnitResult()
        self.definite: set[str] = set()
        self.maybe: set[str] = set()

    def run(self, cells: tuple[AnalyzedCell, ...]) -> UnitResult:
        with gc_paused():  # a big cell's bindings are many small objects, none in a cycle
            self._run(cells)
        return self.result

    def _run(self, cells: tuple[AnalyzedCell, ...]) -> None:
        # A location is made only where one is kept: a big cell has a million events.
        for analyzed in cells:
            for event in analyzed.facts.events:
                kind = event.kind
                if kind == "read":
                    if self._read_tells_something(event.name):
                        self.read(event.name, self._where(analyzed, event), strong=True)
                elif kind == "bind":
                    self._bind(event, analyzed, self._where(analyzed, event))
                elif kind == "call":
                    self._call(event, analyzed)
                else:
                    self._event(event, self._where(analyzed, event))

    def _where(self, analyzed: AnalyzedCell, event: Event) -> Location:
        return analyzed.cell.location(self.notebook, event.line)

    def _read_tells_something(self, name: str) -> bool:
        """Whether a read records anything, or expands to more reads; most reads in a big cell
        are of values the unit made, or were read before."""
        if name in self.definite:
            binding = self.result.bindings.get(name)
            return binding is not None and binding.facts is not None
        binding = self.current(name)
        if binding is not None and binding.facts is not None:
            return True  # calling a notebook function reads what its body reads
        known = self.result.reads.get(name)
        return known is None or not (known.strong or name in self.maybe)

    def current(self, name: str) -> Binding | None:
        if name in self.definite or name in self.maybe:
            return self.result.bindings.get(name)
        if name in self.result.deleted:
            return None
        return self.external.get(name)

    def _event(self, event: Event, where: Location) -> None:
        """A mutate or delete event."""
        if event.kind == "mutate":
            self.mutate(event.name, where, strong=True)
        elif event.kind == "delete" and event.definite:
            self.definite.discard(event.name)
            self.maybe.discard(event.name)
            self.result.bindings.pop(event.name, None)
            self.result.deleted[event.name] = where

    def read(self, name: str, where: Location, strong: bool) -> None:
        """Record a read of ``name``. Calling a notebook function reads what its body reads
        (and what the functions it calls read: followed depth first, each once, with a
        stack); re-running a definition reads its decorators and defaults."""
        self._record(name, where, strong)
        expanded = {name}
        pending = [self._deferred_reads(name)]
        while pending:
            free = next(pending[-1], None)
            if free is None:
                pending.pop()
            else:
                self._record(free, where, strong=False)
                if free not in expanded:
                    expanded.add(free)
                    pending.append(self._deferred_reads(free))

    def _deferred_reads(self, name: str) -> Iterator[str]:
        binding = self.current(name)
        return iter(sorted(binding.facts.deferred_reads) if binding and binding.facts else ())

    def _record(self, name: str, where: Location, strong: bool) -> None:
        if name not in self.definite:
            strong = strong and name not in self.maybe
            known = self.result.reads.get(name)
            if known is None or (strong and not known.strong):
                self.result.reads[name] = Read(name, strong, where)

    def mutate(self, name: str, where: Location, strong: bool) -> None:
        seen: set[str] = set()
        while True:
            self.read(name, where, strong)
            binding = self.current(name)
            if binding is None or binding.origin.kind in _REPLAYED_ORIGINS:
                return  # modules and functions are re-run, never shipped
            self.result.bindings[name] = binding._replace(provider=self.unit, location=where, replay=None)
            self.result.deleted.pop(name, None)
            self.definite.add(name)
            # `best = models[0]` or `for m in models:` share objects, so changing one changes
            # both -- within the process that made the alias; values loaded from artifacts are
            # copies. An alias of an alias of ... is followed down the chain, without recursion.
            seen.add(name)
            base = binding.origin.base if binding.origin.kind in ("alias", "derived") else None
            made_here = binding.provider == self.unit
            if not (made_here and base and base not in seen and self.current(base) is not None):
                return
            name, strong = base, False

    def _bind(self, event: Event, analyzed: AnalyzedCell, where: Location) -> None:
        name, origin = event.name, event.origin
        facts = analyzed.facts.functions.get(name) if origin.kind in ("def", "class") else None
        value = provenance(origin, self.imports, self._provenance_of, self._is_generator_function)
        replay = None
        if event.replay is not None:
            replay = CodeBlock(analyzed.code.cell, analyzed.code.execution_count, event.line, event.replay)
        self.result.bindings[name] = Binding(self.unit, origin, value, where, replay, facts)
        if self.result.deleted:
            self.result.deleted.pop(name, None)
        (self.definite if event.definite else self.maybe).add(name)

    def _provenance_of(self, name: str) -> Provenance | None:
        binding = self.current(name)
        return binding.provenance if binding else None

    def _is_generator_function(self, name: str) -> bool:
        binding = self.current(name)
        return bool(binding and binding.facts and binding.facts.is_generator)

    def _call(self, event: Event, analyzed: AnalyzedCell) -> None:
        binding = self.current(event.name) if "." not in event.name else None
        facts = binding.facts if binding else None
        if facts is not None:
            where = self._where(analyzed, event)
            passed = list(zip(facts.params, event.args, strict=False)) + list(event.keywords)
            for param, arg in passed:
                if arg and param in facts.mutated_params:
                    self.mutate(arg, where, strong=True)
            for name in sorted(facts.mutated_globals):
                self.mutate(name, where, strong=False)
            for name in sorted(facts.assigned_globals):
                previous = self.current(name)
                origin = previous.origin if previous else Origin("unknown")
                kind = previous.provenance if previous else Provenance("Artifact")
                self.result.bindings[name] = Binding(self.unit, origin, kind, where)
                self.result.deleted.pop(name, None)
                self.maybe.add(name)
        elif qualify(event.name, self.imports) in _SHUFFLING_FUNCTIONS and event.args and event.args[0]:
            self.mutate(event.args[0], self._where(analyzed, event), strong=True)


def merge_imports(cells: list[AnalyzedCell]) -> dict[str, str]:
    """Import aliases of the whole notebook, for resolving callees to libraries."""
    imports: dict[str, str] = {}
    for analyzed in cells:
        imports.update(analyzed.facts.imports)
    return imports


def is_notebook_builtin(name: str) -> bool:
    return name in NOTEBOOK_BUILTINS
