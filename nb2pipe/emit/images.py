"""Which image a step runs in and which packages it installs when the image lacks them."""

from __future__ import annotations

from packaging.requirements import Requirement

from nb2pipe.ir import Packaging, PipelinePlan, Step

#: Without an environment to pin against (pure compilation, golden files).
DEFAULT_IMAGE = "python:3.11"


def step_container(step: Step, plan: PipelinePlan, packaging: Packaging | None) -> tuple[str, tuple[str, ...]]:
    """A step tagged ``image:``, or any step when ``--image``/notebook metadata name one,
    runs that image with only its declared packages; otherwise the base image plus what the
    notebook imports anywhere (a step may need a library only through a value another step
    made), pinned to the versions of the compiling environment."""
    explicit = step.options.image or plan.image
    if explicit or packaging is None:
        return explicit or DEFAULT_IMAGE, step.options.packages
    declared = {Requirement(p).name.lower() for p in step.options.packages}
    pinned = [r for r in packaging.requirements if Requirement(r).name.lower() not in declared]
    return packaging.base_image, (*step.options.packages, *pinned)
