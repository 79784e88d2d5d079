/**
 * The sidebar's Run and Problems sections: the run's status, the Kubeflow link and endpoints,
 * the deploy call cards, the run history, the diagnostics list, and the cell marks for both.
 */

import { NotebookPanel } from '@jupyterlab/notebook';

import { requestAPI } from './api';
import { renderDeployCalls } from './deployView';
import { h } from './dom';
import { NotebookState } from './panelState';
import { IRunActions, markFailedCell, renderRunStatus, RunHistoryView } from './runResults';
import { Diagnostic, RunFailure, RunSummary } from './types';
import { listedEndpoints, markCells, renderDiagnosticList, renderRunBox } from './views';

export interface IRunSectionOptions {
  /** select cell `index` of the followed notebook */
  onJumpToCell: (index: number) => void;
  /** open a run's report (its overview, or `step`'s) */
  onOpenReport: (runId: string, step: string | null) => void;
}

export class RunSection {
  constructor(options: IRunSectionOptions) {
    this._actions = { onJumpToCell: options.onJumpToCell, onOpenReport: options.onOpenReport };
    this.runBox = h('div', { className: 'nb2pipe-run' });
    this.deployBox = h('div', { className: 'nb2pipe-deploy-calls', 'id-nb2pipe': 'deploy-calls' });
    this.history = new RunHistoryView({
      load: path => requestAPI<{ runs: RunSummary[] }>(`runs?path=${encodeURIComponent(path)}`).then(r => r.runs ?? []),
      onOpenReport: options.onOpenReport
    });
  }

  readonly runBox: HTMLDivElement;
  readonly deployBox: HTMLDivElement;
  readonly history: RunHistoryView;

  /** Draw `state`'s run and deployments; mark the failed cell of `panel`. */
  render(state: NotebookState | null, panel: NotebookPanel | null): void {
    renderDeployCalls(this.deployBox, state?.deployments ?? []);
    const run = state?.run ?? null;
    renderRunBox(this.runBox, {
      status: run ? renderRunStatus(run, this._actions) : null,
      runUrl: state?.runUrl ?? null,
      runId: state?.runId ?? null,
      // the endpoints the run started, listed with the deployments (their title names the run)
      deployments: listedEndpoints(state?.deployments ?? [], run)
    });
    const failure = run?.failure ?? null;
    if (panel && (this._markedFailure.panel !== panel || this._markedFailure.failure !== failure)) {
      this._markedFailure = { panel, failure };
      markFailedCell(
        panel.content.widgets.map(cell => cell.node),
        failure
      );
    }
  }

  private _actions: IRunActions;
  private _markedFailure: { panel: NotebookPanel | null; failure: RunFailure | null } = { panel: null, failure: null };
}

export class ProblemsSection {
  constructor(onJumpToCell: (index: number) => void) {
    this._onJumpToCell = onJumpToCell;
    this.list = h('ul', { className: 'nb2pipe-diagnostics', 'id-nb2pipe': 'diagnostics' });
  }

  readonly list: HTMLUListElement;

  /** List `state`'s diagnostics and mark the offending cells of `panel`. */
  render(state: NotebookState | null, panel: NotebookPanel | null): void {
    const diagnostics = state?.diagnostics ?? [];
    renderDiagnosticList(this.list, diagnostics, cell => this._onJumpToCell(cell));
    this._markCells(panel, diagnostics);
  }

  /** Mark the offending cells in the notebook: a class and a small message under the cell. */
  private _markCells(panel: NotebookPanel | null, diagnostics: Diagnostic[]): void {
    if (!panel || (this._marked.panel === panel && this._marked.diagnostics === diagnostics)) {
      return;
    }
    this._marked = { panel, diagnostics };
    markCells(
      panel.content.widgets.map(cell => cell.node),
      diagnostics
    );
  }

  private _onJumpToCell: (index: number) => void;
  private _marked: { panel: NotebookPanel | null; diagnostics: Diagnostic[] | null } = { panel: null, diagnostics: null };
}
