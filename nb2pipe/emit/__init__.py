"""Turning a :class:`~nb2pipe.ir.PipelinePlan` into Kubeflow Pipelines artefacts."""
