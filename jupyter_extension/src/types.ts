/** The JSON the server routes answer (API.md). No JupyterLab imports. */

export type Severity = 'error' | 'warning';

/** `nb2pipe.errors.Diagnostic.to_json()`; `cell` is the 0-based cell index (markdown included). */
export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  notebook?: string | null;
  cell: number | null;
  execution_count?: number | null;
  line: number | null;
  hint?: string | null;
}

export interface NotebookSettings {
  pipeline_name: string | null;
  experiment: string | null;
  image: string | null;
  kfp_host: string | null;
  mlflow_tracking_uri: string | null;
}

export interface GraphParameter {
  name: string;
  type: string;
  default: unknown;
}

export type NodeKind = 'step' | 'register' | 'deploy' | 'explain' | 'drift' | 'notebook';

export interface GraphNode {
  id: string;
  kind: NodeKind | string;
  label: string;
  cells: number[];
  resources?: {
    cpu: string | null;
    memory: string | null;
    gpu: number | null;
    gpu_type: string | null;
  } | null;
  image?: string | null;
  /** the sub-pipeline (a `notebook` node's id, `a.b` when nested) this task belongs to */
  group?: string | null;
}

export interface GraphEdge {
  source: string;
  target: string;
  variables: string[];
  kind: 'data' | 'order' | string;
  /** out of a sub-pipeline: each variable -> the innermost task inside it that makes the value */
  from_tasks?: Record<string, string>;
}

/** Where one code cell goes: `step` names its step, or `role` says why it has none. */
export interface GraphCell {
  cell: number;
  step: string | null;
  role: 'step' | 'imports' | 'functions' | 'parameters' | 'metrics' | 'skip' | 'unassigned' | string;
}

export interface Graph {
  notebook: string;
  pipeline: string;
  settings?: Partial<NotebookSettings>;
  parameters?: GraphParameter[];
  nodes: GraphNode[];
  edges: GraphEdge[];
  diagnostics?: Diagnostic[];
  /** every code cell's step or role (markdown cells are not listed) */
  cells?: GraphCell[];
}

export interface CompileResult {
  graph: Graph;
  output: string;
  yaml: string;
  diagnostics: Diagnostic[];
}

export type RunStatus = 'starting' | 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface RunStep {
  name: string;
  status: string;
  seconds: number | null;
  /** a `running` step still waiting for its inputs (show it as waiting, not running) */
  waiting?: boolean;
}

/** The first failed step of a failed run; `cell` 0-based (as in a Diagnostic), null outside the notebook's code. */
export interface RunFailure {
  step: string;
  cell: number | null;
  line: number | null;
  message: string;
}

/** One run of GET /nb2pipe/runs?path=NB.ipynb; `started`/`finished` epoch seconds. */
export interface RunSummary {
  run_id: string;
  status: RunStatus | string;
  started: number | null;
  finished: number | null;
}

export interface Run {
  run_id: string;
  notebook: string;
  status: RunStatus | string;
  done: boolean;
  steps: RunStep[];
  metrics?: Record<string, unknown>;
  failures?: { step: string; message: string }[];
  endpoints?: { service: string; url: string | null }[];
  log?: string | null;
  failure?: RunFailure | null;
}

export interface SubmitResult {
  run_id: string;
  run_url: string;
  pipeline_id?: string;
  version_id?: string;
  experiment_id?: string;
}

/** One input column of a served model (its MLflow signature). */
export interface CallInput {
  name: string;
  /** MLflow's type: double, long, string… */
  type: string;
  /** the v2 protocol's: FP64, INT64, BYTES… */
  datatype: string;
}

/** How to call a deployed service (API.md, `POST /nb2pipe/deploy`). */
export interface DeployCall {
  base_url: string | null;
  predict_path: string;
  infer_path: string;
  metadata_path: string;
  inputs: CallInput[];
  curl: string | null;
  curl_note: string | null;
}

export interface Deployment {
  service: string;
  model_uri: string;
  target: string;
  url: string | null;
  call?: DeployCall | null;
}

export interface DeployResult {
  deployments: Deployment[];
}

/** The body of every error answer. */
export interface ErrorBody {
  message: string;
  diagnostics: Diagnostic[];
}
