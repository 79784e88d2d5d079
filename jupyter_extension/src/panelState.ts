/**
 * The panel's model: its four actions, its settings (schema/plugin.json) and what it keeps
 * for each open notebook while another one is active. No JupyterLab imports.
 */

import { RunPoller } from './runs';
import { Deployment, Diagnostic, Graph, Run } from './types';

export type Action = 'compile' | 'run' | 'submit' | 'deploy';
export const ACTIONS: Action[] = ['compile', 'run', 'submit', 'deploy'];

export const ACTION_LABELS: Record<Action, string> = {
  compile: 'Compile',
  run: 'Run locally',
  submit: 'Submit to Kubeflow',
  deploy: 'Deploy'
};

export const ACTION_TITLES: Record<Action, string> = {
  compile: 'Save the notebook and compile it to NB.pipeline.yaml',
  run: 'Save, compile and run the pipeline locally (kfp.local)',
  submit: 'Save, compile and start a run on Kubeflow Pipelines (kfp_host)',
  deploy: "Serve the champion of every model the notebook registers and deploys"
};

export interface PanelSettings {
  /** run status poll interval, ms */
  pollInterval: number;
  /** wait after the last edit before the graph is refreshed, ms */
  graphDebounce: number;
  deployTarget: 'local' | 'cluster';
}

export const DEFAULT_SETTINGS: PanelSettings = {
  pollInterval: 1000,
  graphDebounce: 500,
  deployTarget: 'local'
};

/** What the panel shows for one notebook (kept while another notebook is active). */
export class NotebookState {
  graph: Graph | null = null;
  graphError = '';
  diagnostics: Diagnostic[] = [];
  yaml: string | null = null;
  output = '';
  run: Run | null = null;
  runUrl = '';
  runId = '';
  deployments: Deployment[] = [];
  message = '';
  messageKind: 'info' | 'error' = 'info';
  busy = new Set<Action>();
  poller: RunPoller | null = null;
  graphTimer: ReturnType<typeof setTimeout> | null = null;
  graphRequest = 0;
  /** the composed notebook's sub-pipelines shown expanded in the graph (notebook node ids) */
  expandedGroups = new Set<string>();
}

/** A run of the notebook this panel started (or was told of) is still being followed. */
export function runGoing(state: NotebookState | null): boolean {
  return state?.poller?.isPolling ?? false;
}

/**
 * Whether an action's button is disabled: no notebook, the action already under way, or,
 * for "Run locally", a run of this notebook still going (the server would answer 409).
 */
export function actionDisabled(action: Action, state: NotebookState | null, hasNotebook: boolean): boolean {
  const busy = state?.busy.has(action) ?? false;
  return !hasNotebook || busy || (action === 'run' && runGoing(state));
}

/** The id of the run still going, from a 409 answer to POST /nb2pipe/runs (else null). */
export function runningRunId(status: number, body: unknown): string | null {
  if (status !== 409 || typeof body !== 'object' || body === null) {
    return null;
  }
  const runId = (body as { run_id?: unknown }).run_id;
  return typeof runId === 'string' && runId ? runId : null;
}
