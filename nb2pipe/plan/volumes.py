"""What the planned DAG says about the steps' volumes: two claims at one path in a step
(an error), and steps that can run at the same time sharing a claim that may be ReadWriteOnce
(a warning: such a volume attaches to one node at a time)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from nb2pipe.errors import Diagnostic, error, warning
from nb2pipe.ir import Step, VolumeMount

#: access modes that let one node only mount the volume
_ONE_NODE = ("ReadWriteOnce", "ReadWriteOncePod")


def volume_diagnostics(steps: Sequence[Step]) -> list[Diagnostic]:
    """Problems with the steps' mounts; ``steps`` with their final ``upstream``."""
    return [*_mount_conflicts(steps), *_shared_claims(steps)]


def _mount_conflicts(steps: Sequence[Step]) -> list[Diagnostic]:
    diagnostics = []
    for step in steps:
        claims_at: dict[str, list[str]] = {}
        for mount in step.options.volumes:
            claims_at.setdefault(mount.path, []).append(mount.claim)
        for path, claims in claims_at.items():
            if len(claims) > 1:
                diagnostics.append(
                    error(
                        "volume-conflict",
                        f"step {step.name!r} mounts {len(claims)} claims at {path}: {', '.join(claims)}",
                        step.location,
                        "one claim per path: remove a volume: tag, or mount the others at other paths",
                    )
                )
    return diagnostics


def ancestors_of(upstream: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Every step each step waits for, directly or through others (``upstream``: the direct parents)."""
    found: dict[str, frozenset[str]] = {}

    def visit(name: str) -> frozenset[str]:
        pending = [name]
        seen: set[str] = set()
        while pending:
            for parent in upstream.get(pending.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return frozenset(seen)

    for name in upstream:
        found[name] = visit(name)
    return found


def _shared_claims(steps: Sequence[Step]) -> list[Diagnostic]:
    ancestors = ancestors_of({step.name: step.upstream for step in steps})
    # an existing claim and one the pipeline creates under the same name are different claims
    users: dict[tuple[str, bool], list[tuple[Step, VolumeMount]]] = {}
    for step in steps:
        for mount in step.options.volumes:
            users.setdefault((mount.claim, mount.new is not None), []).append((step, mount))
    diagnostics = []
    for (claim, created), mounts in users.items():
        new = mounts[0][1].new
        if new is not None and not any(mode in _ONE_NODE for mode in new.access_modes):
            continue
        parallel = [
            (first, second)
            for (first, _), (second, _) in itertools.combinations(mounts, 2)
            if first.name not in ancestors[second.name] and second.name not in ancestors[first.name]
        ]
        if not parallel:
            continue
        first, second = parallel[0]
        more = f" (and {len(parallel) - 1} more such pairs)" if len(parallel) > 1 else ""
        which = f"the claim the pipeline creates as {claim!r}" if created else f"claim {claim!r}"
        mode = "it is ReadWriteOnce" if created else "if it is ReadWriteOnce"
        diagnostics.append(
            warning(
                "shared-volume",
                f"steps {first.name!r} and {second.name!r} can run at the same time and both mount {which}{more}: "
                f"{mode}, it attaches to one node at a time, so one pod can wait or fail to start",
                second.location,
                f"add after:{first.name} to step {second.name!r} so they run in turn, "
                "or use a ReadWriteMany storage class",
            )
        )
    return diagnostics
