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
}
