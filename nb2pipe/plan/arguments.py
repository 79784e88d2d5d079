"""What KFP calls the values a step hands on and takes in: one function signature per step,
its argument names valid KFP identifiers however the notebook spells its variables."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from nb2pipe.identifiers import is_kfp_identifier, kfp_identifier
from nb2pipe.ir import Step, StepInput


@dataclass(frozen=True)
class ArgumentNames:
    """A step function's argument names, by notebook name: what KFP calls each value."""

    outputs: dict[str, str]
    inputs: dict[str, str]


def argument_names(outputs: Iterable[str], incoming: Iterable[str], reserved: Collection[str]) -> ArgumentNames:
    """KFP names for the values a step hands on (``outputs``) and takes in (``incoming``), all
    in one function signature, none of them ``reserved``.

    A notebook name KFP accepts is kept; others (``_x``, ``données``, nb2pipe's own
    ``nb2pipe_report``) get a valid identifier that no other argument has. A value that comes
    in and goes out again is two arguments: the incoming one is ``NAME_in``. Valid names
    claim theirs first, so ``x`` stays ``x`` beside ``_x``; sorted order keeps it deterministic.
    """
    taken = set(reserved)
    going, coming = sorted(outputs), sorted(incoming)
    wanted = [("out", name, name) for name in going]
    wanted += [("in", name, f"{name}_in" if name in going else name) for name in coming]
    ordered = sorted(wanted, key=lambda item: not is_kfp_identifier(item[2]))  # stable: valid names first
    chosen = {(side, name): kfp_identifier(candidate, taken) for side, name, candidate in ordered}
    return ArgumentNames(
        {name: chosen[("out", name)] for name in going},
        {name: chosen[("in", name)] for name in coming},
    )


def keyed(item: StepInput, steps: list[Step]) -> StepInput:
    """``item`` reading its producer's output under the key KFP knows it by."""
    producer = next(step for step in steps if step.name == item.source_step)
    key = next(output.arg for output in producer.outputs if output.name == item.name)
    return replace(item, source_output=key)
