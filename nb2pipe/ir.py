"""The intermediate representation: frozen values passed between compiler stages.

read  -> :class:`Notebook`
layout-> :class:`Layout` (which cell plays which role, step options from tags)
analyze/plan -> :class:`PipelinePlan` (steps with typed inputs/outputs and edges)
emit  -> KFP IR YAML text
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from nb2pipe.errors import Diagnostic, Location
from nb2pipe.step_settings import (
    NewClaim as NewClaim,
    NodeAffinityRule as NodeAffinityRule,
    PackageIndex as PackageIndex,
    Resources as Resources,
    SecretEnv as SecretEnv,
    StepOptions as StepOptions,
    Toleration as Toleration,
    VolumeMount as VolumeMount,
    Workspace as Workspace,
)

ArtifactKind = Literal["Dataset", "Model", "Artifact"]
ParameterType = Literal["int", "float", "str", "bool", "list", "dict"]

# Shared vocabulary: names every stage, runner and the editor agree on.

#: outputs every step may have (nb2pipe.emit.step_source)
METRICS_OUTPUT = "nb2pipe_metrics"
REPORT_OUTPUT = "nb2pipe_report"
#: the step input that receives the pipeline's workspace path, when it has one (KFP's ``{{$.workspace_path}}``)
WORKSPACE_INPUT = "nb2pipe_workspace"
#: outputs of the register and deploy tasks (nb2pipe.emit.lifecycle)
REGISTERED_OUTPUT = "registered_model"
PROMOTION_OUTPUT = "promotion"
DEPLOYMENT_OUTPUT = "deployment"
#: outputs of the drift and explain tasks (nb2pipe.emit.monitoring)
DRIFT_FLAG_OUTPUT = "is_drift"
DRIFT_METRICS_OUTPUT = "drift_metrics"
DRIFT_REPORT_OUTPUT = "drift_report"
EXPLANATION_OUTPUT = "explanation"
EXPLAIN_METRICS_OUTPUT = "explain_metrics"
#: the monitoring pipeline's gate: its verdict, and the parameters it reads
RETRAIN_OUTPUT = "retrain"
FORCE_PARAMETER = "force_retrain"
PAYLOADS_PARAMETER = "payloads"

#: drift tests (nb2pipe.monitoring.drift) and their multiple-testing corrections
DRIFT_METHODS = ("tabular", "ks", "chi2", "mmd")
#: explanation methods (nb2pipe.monitoring.explain): Anchor and Integrated Gradients
EXPLAIN_METHODS = ("anchor", "ig")
DRIFT_CORRECTIONS = ("bonferroni", "fdr")


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str
    source: str
    tags: tuple[str, ...]
    execution_count: int | None = None

    def location(self, notebook: str, line: int | None = None) -> Location:
        return Location(notebook, self.index, self.execution_count, line)


@dataclass(frozen=True)
class Notebook:
    path: str
    cells: tuple[Cell, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name alone: what generated code and messages show."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Tag:
    kind: str
    args: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class DriftOptions:
    """How drift is tested (``metadata.nb2pipe.drift``): the method, the p-value, the
    multiple-testing correction, which columns are categorical (None: by dtype), and the
    fewest served rows the monitoring pipeline needs before it tests at all."""

    method: str = "tabular"
    p_value: float = 0.05
    correction: str = "bonferroni"
    categorical: tuple[str, ...] | None = None
    min_rows: int = 50


@dataclass(frozen=True)
class PipelineSettings:
    name: str
    description: str = ""
    experiment: str | None = None
    image: str | None = None
    step_defaults: StepOptions = StepOptions()
    drift: DriftOptions = DriftOptions()
    #: ``metadata.nb2pipe.kfp_host``: where ``nb2pipe submit`` sends the pipeline without --host
    kfp_host: str | None = None
    #: ``metadata.nb2pipe.mlflow_tracking_uri``: the MLflow server used when MLFLOW_TRACKING_URI is unset
    mlflow_tracking_uri: str | None = None
    #: ``metadata.nb2pipe.pip_index_urls`` / ``pip_trusted_hosts``
    package_index: PackageIndex = PackageIndex()
    workspace: Workspace | None = None
    #: Kale's ``timeout`` (also ``metadata.nb2pipe.timeout``): the whole run's limit in seconds
    timeout_seconds: int | None = None


@dataclass(frozen=True)
class StepSpec:
    """A step as the tags declare it, before any code analysis."""

    name: str
    cells: tuple[Cell, ...]
    after: tuple[tuple[str, Location], ...]
    options: StepOptions
    location: Location
    registration: ModelRegistration | None = None
    deployment: ModelDeployment | None = None
    drift: tuple[DriftCheck, ...] = ()


@dataclass(frozen=True)
class NotebookRef:
    """A ``notebook:PATH`` cell: ``path`` as written, relative to the notebook that names it."""

    path: str
    cell: Cell
    location: Location


@dataclass(frozen=True)
class Layout:
    notebook: Notebook
    settings: PipelineSettings
    prelude: tuple[Cell, ...]
    parameters: tuple[Cell, ...]
    metrics: tuple[Cell, ...]
    steps: tuple[StepSpec, ...]
    skipped: tuple[Cell, ...]
    unassigned: tuple[Cell, ...]
    #: cells tagged ``notebook:PATH``: another notebook's pipeline runs there as a sub-pipeline
    notebooks: tuple[NotebookRef, ...] = ()


@dataclass(frozen=True)
class CodeBlock:
    """Code to run inside a step, with where it came from so tracebacks map back."""

    cell: int
    execution_count: int | None
    first_line: int
    source: str


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    default: Any
    location: Location
    #: a ``None`` default (papermill's idiom): an optional pipeline input, None in the step unless set
    optional: bool = False
    #: the pipeline input's name where the notebook's is not a valid KFP identifier (``_seed``, ``größe``)
    input_name: str = ""

    @property
    def pipeline_input(self) -> str:
        """What KFP calls this parameter: the notebook's name unless KFP refuses it."""
        return self.input_name or self.name


@dataclass(frozen=True)
class StepInput:
    name: str
    arg: str
    source_step: str | None
    source_output: str | None
    kind: ArtifactKind | None = None
    parameter_type: ParameterType | None = None

    @property
    def is_parameter(self) -> bool:
        return self.source_step is None


@dataclass(frozen=True)
class StepOutput:
    name: str
    arg: str
    kind: ArtifactKind


@dataclass(frozen=True)
class Step:
    name: str
    cells: tuple[CodeBlock, ...]
    replays: tuple[CodeBlock, ...]
    inputs: tuple[StepInput, ...]
    outputs: tuple[StepOutput, ...]
    metrics: tuple[str, ...]
    after: tuple[str, ...]
    upstream: tuple[str, ...]
    options: StepOptions
    location: Location
    #: names whose value at the end of a top-to-bottom run is the one this step leaves
    finals: tuple[str, ...] = ()
    #: the prelude statements this step runs (imports it does not use are left out)
    prelude: tuple[CodeBlock, ...] = ()


@dataclass(frozen=True)
class LifecycleTask:
    """Register the model a step makes in MLflow, and deploy it when the step says so."""

    register_task: str
    deploy_task: str | None
    step: str
    model: StepInput
    #: training data whose first rows become the input example and signature
    example: StepInput | None
    #: steps whose metrics (the metrics cell's values) are logged with the model
    metrics_from: tuple[str, ...]
    parameters: tuple[str, ...]
    registration: ModelRegistration
    deployment: ModelDeployment | None = None
    #: (method, task name) of each explanation task: explain:anchor, explain:ig
    explain_tasks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DriftTask:
    """``drift:CURRENT[:REFERENCE]``: test the step's CURRENT data against REFERENCE (by
    default the training data of the model the notebook registers)."""

    task: str
    step: str
    current: StepInput
    reference: StepInput
    options: DriftOptions


@dataclass(frozen=True)
class MonitorGate:
    """The first task of a monitoring pipeline: test the traffic the champion served since it
    was deployed against the data it was trained on; the notebook's steps, register and deploy
    run only when it answers "retrain" (drift found, nothing served yet, or forced)."""

    task: str
    model_name: str
    #: the service whose payload log holds the traffic (the register step's deploy:)
    service: str | None
    #: the step whose image the check runs in
    step: str
    options: DriftOptions
    #: the deploy:'s payload logger sink and namespace: a blob store's objects are the traffic
    logger_url: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class SubPipelineOutput:
    """A value a sub-pipeline hands back: ``name`` in the notebooks, ``key`` the DAG output,
    made by the child's step ``step`` under its output ``step_output``."""

    name: str
    key: str
    kind: ArtifactKind
    step: str
    step_output: str


@dataclass(frozen=True)
class SubPipeline:
    """Another notebook's pipeline used as a component of this one (a ``notebook:PATH`` cell).

    ``arguments``: (child parameter, this pipeline's parameter) for each child parameter this
    notebook also has; the others keep the child's default."""

    task: str
    path: str
    plan: PipelinePlan
    arguments: tuple[tuple[str, str], ...]
    outputs: tuple[SubPipelineOutput, ...]
    location: Location


@dataclass(frozen=True)
class PipelinePlan:
    name: str
    description: str
    notebook: str
    parameters: tuple[Parameter, ...]
    prelude: tuple[CodeBlock, ...]
    steps: tuple[Step, ...]
    #: the image every step runs in unless tagged otherwise; None: a base image plus packages
    image: str | None
    experiment: str | None = None
    warnings: tuple[Diagnostic, ...] = ()
    #: top-level modules the notebook imports anywhere: what a step's image must provide
    modules: tuple[str, ...] = ()
    lifecycle: tuple[LifecycleTask, ...] = ()
    drift: tuple[DriftTask, ...] = ()
    drift_options: DriftOptions = DriftOptions()
    gate: MonitorGate | None = None
    #: the notebook's own Kubeflow Pipelines endpoint and MLflow server (``metadata.nb2pipe``)
    kfp_host: str | None = None
    mlflow_tracking_uri: str | None = None
    #: where every component's pip install comes from (``--pip-index-url`` over the notebook's metadata)
    package_index: PackageIndex = PackageIndex()
    #: ``metadata.nb2pipe.workspace``: large values go through it
    workspace: Workspace | None = None
    #: the whole run's limit (KFP PipelineConfig activeDeadlineSeconds; the local runner stops the run)
    timeout_seconds: int | None = None
    #: other notebooks' pipelines run as sub-pipelines (``notebook:PATH`` cells)
    subpipelines: tuple[SubPipeline, ...] = ()

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True)
class Packaging:
    """How steps without an explicit image get their libraries: a base image plus pinned
    requirements, keyed by top-level import name."""

    base_image: str
    pins: Mapping[str, str] = field(default_factory=dict)

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.pins.values()))


ScaleMetric = Literal["concurrency", "rps", "cpu", "memory"]
SCALE_METRICS: tuple[str, ...] = get_args(ScaleMetric)
#: KServe's deployment modes: Knative (Knative Pod Autoscaler, scale to zero, revision canaries)
#: and Standard (a Deployment with an HPA, which scales on cpu or memory only)
DeployMode = Literal["knative", "standard"]
DEPLOY_MODES: tuple[str, ...] = get_args(DeployMode)
#: which server runs the model on the cluster: ``auto`` (KServe's own server for the model's
#: format when its library version matches the training environment's, else nb2pipe-server),
#: ``kserve`` (the format's KServe server), ``predictive`` (kserve-predictiveserver),
#: ``mlserver`` (Seldon MLServer, unmaintained: only on request), ``nb2pipe`` (nb2pipe-server)
RuntimeChoice = Literal["auto", "kserve", "predictive", "mlserver", "nb2pipe"]
RUNTIME_CHOICES: tuple[str, ...] = get_args(RuntimeChoice)


@dataclass(frozen=True)
class DeploySettings:
    """How a model is served: resources, autoscaling, canary and payload logging.

    ``None`` leaves a field to KServe's default. ``monitor`` turns the payload logger on
    (``logger_url`` receives the events on a cluster; locally they go to a file store).
    """

    gpu: int = 0
    #: what ``gpu`` counts: an extended resource (a name with '/': nvidia.com/mig-1g.18gb), or a GPU
    #: product as NVIDIA's GPU Feature Discovery labels nodes (NVIDIA-H100-80GB-HBM3) on nvidia.com/gpu
    #: (nb2pipe.deploy_checks.gpu_placement)
    gpu_type: str = "nvidia.com/gpu"
    cpu: str | None = None
    memory: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_metric: ScaleMetric | None = None
    scale_target: int | None = None
    container_concurrency: int | None = None
    canary_percent: int | None = None
    monitor: bool = False
    logger_url: str | None = None
    namespace: str | None = None
    port: int | None = None
    #: "anchor" or "ig": the served model also answers ``:explain`` with this method
    explainer: str | None = None
    #: KServe's batcher: requests merged into batches of at most this many rows...
    batch_max_size: int | None = None
    #: ...waiting at most this long (ms) for a batch to fill
    batch_max_latency_ms: int | None = None
    #: KServe's deployment mode; None: the cluster's default (nb2pipe.lifecycle.deploy_mode)
    mode: DeployMode | None = None
    #: the target cluster's KServe version ("0.20"): Standard-mode canaries (spec.canary) need 0.20
    kserve_version: str | None = None
    #: the Prometheus KEDA asks in Standard mode for rps, concurrency and scale to zero
    prometheus_url: str | None = None
    #: the label Prometheus puts a scraped pod's namespace in (older configurations: kubernetes_namespace);
    #: nb2pipe's KEDA query selects the service's namespace by it, "" selects none (standard_scaling)
    prometheus_namespace_label: str = "namespace"
    #: a PromQL query replacing nb2pipe's request-rate / in-flight query (KEDA, Standard mode)
    scale_query: str | None = None
    #: which server runs the model (:data:`RUNTIME_CHOICES`); None: ``auto``
    runtime: RuntimeChoice | None = None


@dataclass(frozen=True)
class ModelRegistration:
    """``register:NAME[:VARIABLE]`` (+ ``promote:METRIC>=|<=``) on a step."""

    model_name: str
    variable: str | None
    promote_metric: str | None
    higher_is_better: bool
    location: Location
    #: explain:anchor / explain:ig on the step, in tag order
    explain: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftCheck:
    """``drift:CURRENT[:REFERENCE]`` on a step."""

    current: str
    reference: str | None
    location: Location


@dataclass(frozen=True)
class ModelDeployment:
    """``deploy:SERVICE`` on a step that registers a model."""

    service: str
    settings: DeploySettings
    location: Location


def is_service_name(text: str) -> bool:
    """A DNS-1123 label, as Kubernetes names an InferenceService: a-z, 0-9, '-', 63 at most."""
    return (
        0 < len(text) <= 63
        and text.isascii()
        and all(ch.islower() or ch.isdigit() or ch == "-" for ch in text)
        and text[0].isalpha()
        and text[-1] != "-"
    )
