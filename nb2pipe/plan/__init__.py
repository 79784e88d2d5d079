"""Plan: a notebook's layout and its code's analysis -> :class:`~nb2pipe.ir.PipelinePlan`.

:mod:`.pipeline` builds the plan; :mod:`.state` follows values through the steps,
:mod:`.arguments` names step arguments, :mod:`.metrics` resolves ``pipeline-metrics``, and
:mod:`.lifecycle` / :mod:`.monitoring` add nb2pipe's own tasks (register, deploy, drift, the
monitoring pipeline).
"""

from nb2pipe.plan.pipeline import build_plan

__all__ = ["build_plan"]
