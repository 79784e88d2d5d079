/**
 * The server calls behind the sidebar's action buttons (compile, run locally, submit, deploy),
 * following a local run, and
 * the adapters that let the settings form and the tag editor read and write the notebook model.
 */

import { Notebook, NotebookPanel } from '@jupyterlab/notebook';

import { post, requestAPI } from './api';
import { NOTHING_TO_COMPILE, nothingToCompile } from './cellBadges';
import { ICellTagsHost } from './cellEditor';
import { summarize } from './diagnostics';
import { parametersBody } from './parametersForm';
import { INotebookSettingsHost } from './settingsForm';
import { NotebookState } from './panelState';
import { RunPoller } from './runs';
import { CompileResult, DeployResult, Run, SubmitResult } from './types';

/** A notebook cell widget (without depending on @jupyterlab/cells directly). */
export type Cell = Notebook['widgets'][number];

/** Tell the user how an action went. */
export type Say = (state: NotebookState, text: string, kind: 'info' | 'error') => void;

/** Compile `path`; the YAML, graph and diagnostics land in `state` (`sources`: the cells now, null without a notebook). */
export async function compileNotebook(
  state: NotebookState,
  path: string,
  sources: () => string[] | null,
  say: Say
): Promise<void> {
  const result = await post<CompileResult>('compile', { path });
  state.yaml = result.yaml;
  state.output = result.output;
  if (result.graph) {
    // the compile route's graph may lack the cell roles: keep the ones the graph route gave
    state.graph = result.graph.cells ? result.graph : { ...result.graph, cells: state.graph?.cells };
    state.graphError = '';
  }
  state.diagnostics = result.diagnostics ?? [];
  const warnings = state.diagnostics.length ? ` (${summarize(state.diagnostics)})` : '';
  const current = sources();
  if (current && nothingToCompile(state.graph, current)) {
    say(state, `${NOTHING_TO_COMPILE} (${result.output} runs an empty step)`, 'error');
    return;
  }
  say(state, `Compiled to ${result.output}${warnings}.`, 'info');
}

/** Start a local run of `path`; returns its id for the caller to follow. */
export async function startRun(state: NotebookState, path: string, parameters: Record<string, string>, say: Say): Promise<string> {
  const run = await post<Run>('runs', { path, ...parametersBody(parameters) });
  state.run = run;
  state.runId = run.run_id;
  state.diagnostics = [];
  say(state, `Run ${run.run_id} started locally.`, 'info');
  return run.run_id;
}

/** Submit `path` to Kubeflow Pipelines. */
export async function submitNotebook(state: NotebookState, path: string, parameters: Record<string, string>, say: Say): Promise<void> {
  const result = await post<SubmitResult>('submit', { path, ...parametersBody(parameters) });
  state.runUrl = result.run_url;
  state.runId = result.run_id;
  state.diagnostics = [];
  say(state, `Submitted run ${result.run_id} to Kubeflow Pipelines.`, 'info');
}

/** Deploy `path`'s models to `target`. */
export async function deployNotebook(state: NotebookState, path: string, target: 'local' | 'cluster', say: Say): Promise<void> {
  const result = await post<DeployResult>('deploy', { path, target });
  state.deployments = result.deployments ?? [];
  state.diagnostics = [];
  const names = state.deployments.map(d => d.service).join(', ');
  say(state, `Deployed ${names || 'nothing'} (${target}).`, 'info');
}

/** The notebook's `nb2pipe` metadata, for the settings form (null deletes it). */
export function notebookSettingsHost(panel: NotebookPanel): INotebookSettingsHost {
  return {
    get: () => panel.model?.getMetadata('nb2pipe'),
    set: value => {
      if (!panel.model) {
        return;
      }
      if (value === null) {
        panel.model.deleteMetadata('nb2pipe');
      } else {
        panel.model.setMetadata('nb2pipe', value);
      }
    }
  };
}

/** `cell`'s tags, for the tag editor (an empty list deletes the metadata key). */
export function cellTagsHost(cell: Cell, notebook: NotebookPanel | null): ICellTagsHost {
  return {
    key: cell.model.id,
    cellType: cell.model.type,
    get label() {
      const index = notebook ? notebook.content.widgets.indexOf(cell) : -1;
      return `Cell ${index + 1} (${cell.model.type})`;
    },
    getTags: () => {
      const tags = cell.model.getMetadata('tags');
      return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
    },
    setTags: tags => {
      if (tags.length) {
        cell.model.setMetadata('tags', tags);
      } else {
        cell.model.deleteMetadata('tags');
      }
    }
  };
}

export interface IFollowRunOptions {
  /** milliseconds between two polls */
  interval: number;
  /** the state changed: redraw it if it is shown */
  onChange: () => void;
  /** the run ended (after its message was said) */
  onDone: () => void;
  say: Say;
  /** following the run failed */
  fail: (what: string, error: unknown) => void;
}

/** Poll run `runId` into `state.run` until it ends (one poller per notebook). */
export function followRun(state: NotebookState, runId: string, options: IFollowRunOptions): void {
  state.poller?.stop();
  state.poller = new RunPoller({
    interval: options.interval,
    fetchRun: id => requestAPI<Run>(`runs/${encodeURIComponent(id)}`),
    onUpdate: run => {
      state.run = run;
      options.onChange();
    },
    onDone: run => {
      const failures = (run.failures ?? []).map(f => `${f.step}: ${f.message}`).join('; ');
      options.say(state, `Run ${run.run_id} ${run.status}${failures ? `: ${failures}` : ''}.`, run.status === 'succeeded' ? 'info' : 'error');
      options.onChange();
      options.onDone();
    },
    onError: error => {
      options.fail(`Following run ${runId} failed`, error);
      options.onChange();
    }
  });
  state.poller.start(runId);
}
