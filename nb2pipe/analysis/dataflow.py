"""Data flow between steps: which value each step needs and which earlier step provides it.

Steps are replayed in notebook order, as a top-to-bottom run would execute them. A name a
step reads before binding it is resolved to its reaching definition: a pipeline parameter,
the prelude (which every step runs), code to re-run (imports, functions and classes are
re-executed rather than shipped), or the output artifact of an earlier step.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from nb2pipe.analysis.kinds import Provenance, provenance, qualify
from nb2pipe.analysis.names import CellFacts, Event, Origin
from nb2pipe.analysis.scopes import FunctionFacts
from nb2pipe.errors import Location
from nb2pipe.ir import Cell, CodeBlock

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


@dataclass(frozen=True)
class Binding:
    provider: str
    origin: Origin
    provenance: Provenance
    location: Location
    replay: CodeBlock | None = None
    facts: FunctionFacts | None = None
    deleted: bool = False


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
        self._expanding: set[str] = set()

    def run(self, cells: tuple[AnalyzedCell, ...]) -> UnitResult:
        for analyzed in cells:
            for event in analyzed.facts.events:
                where = analyzed.cell.location(self.notebook, event.line)
                self._event(event, analyzed, where)
        return self.result

    def current(self, name: str) -> Binding | None:
        if name in self.definite or name in self.maybe:
            return self.result.bindings.get(name)
        if name in self.result.deleted:
            return None
        return self.external.get(name)

    def _event(self, event: Event, analyzed: AnalyzedCell, where: Location) -> None:
        if event.kind == "read":
            self.read(event.name, where, strong=True)
        elif event.kind == "bind":
            self._bind(event, analyzed, where)
        elif event.kind == "mutate":
            self.mutate(event.name, where, strong=True)
        elif event.kind == "delete":
            if event.definite:
                self.definite.discard(event.name)
                self.maybe.discard(event.name)
                self.result.bindings.pop(event.name, None)
                self.result.deleted[event.name] = where
        elif event.kind == "call":
            self._call(event, where)

    def read(self, name: str, where: Location, strong: bool) -> None:
        if name not in self.definite:
            strong = strong and name not in self.maybe
            known = self.result.reads.get(name)
            if known is None or (strong and not known.strong):
                self.result.reads[name] = Read(name, strong, where)
        binding = self.current(name)
        if binding is None or name in self._expanding:
            return
        self._expanding.add(name)
        try:
            # Calling a notebook function reads what its body reads; re-running a
            # definition reads its decorators and defaults.
            if binding.facts is not None:
                for free in sorted(binding.facts.deferred_reads):
                    self.read(free, where, strong=False)
        finally:
            self._expanding.discard(name)

    def mutate(self, name: str, where: Location, strong: bool, _seen: frozenset[str] = frozenset()) -> None:
        self.read(name, where, strong)
        binding = self.current(name)
        if binding is None or binding.origin.kind in _REPLAYED_ORIGINS:
            return  # modules and functions are re-run, never shipped
        self.result.bindings[name] = replace(binding, provider=self.unit, location=where, replay=None)
        self.result.deleted.pop(name, None)
        self.definite.add(name)
        # `best = models[0]` or `for m in models:` share objects, so changing one changes both
        # -- within the process that made the alias; values loaded from artifacts are copies.
        base = binding.origin.base if binding.origin.kind in ("alias", "derived") else None
        made_here = binding.provider == self.unit
        if made_here and base and base != name and base not in _seen and self.current(base) is not None:
            self.mutate(base, where, strong=False, _seen=_seen | {name})

    def _bind(self, event: Event, analyzed: AnalyzedCell, where: Location) -> None:
        facts = analyzed.facts.functions.get(event.name) if event.origin.kind in ("def", "class") else None
        value = provenance(event.origin, self.imports, self._provenance_of, self._is_generator_function)
        replay = None
        if event.replay is not None:
            replay = CodeBlock(analyzed.code.cell, analyzed.code.execution_count, event.line, event.replay)
        self.result.bindings[event.name] = Binding(self.unit, event.origin, value, where, replay, facts)
        self.result.deleted.pop(event.name, None)
        (self.definite if event.definite else self.maybe).add(event.name)

    def _provenance_of(self, name: str) -> Provenance | None:
        binding = self.current(name)
        return binding.provenance if binding else None

    def _is_generator_function(self, name: str) -> bool:
        binding = self.current(name)
        return bool(binding and binding.facts and binding.facts.is_generator)

    def _call(self, event: Event, where: Location) -> None:
        head = event.name.split(".")[0]
        binding = self.current(head) if "." not in event.name else None
        facts = binding.facts if binding else None
        if facts is not None:
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
            self.mutate(event.args[0], where, strong=True)


def merge_imports(cells: list[AnalyzedCell]) -> dict[str, str]:
    """Import aliases of the whole notebook, for resolving callees to libraries."""
    imports: dict[str, str] = {}
    for analyzed in cells:
        imports.update(analyzed.facts.imports)
    return imports


def is_notebook_builtin(name: str) -> bool:
    return name in NOTEBOOK_BUILTINS
