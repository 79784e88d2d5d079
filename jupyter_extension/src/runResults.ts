/**
 * The run's results in the panel: its status (`run-status`; a step waiting for its inputs
 * shown apart from a running one, only failed steps red), the failure with a "go to cell"
 * action and a mark on that cell, the log as plain text, "Open report", and the notebook's
 * run history. Plain DOM, no JupyterLab imports, so jest renders them in jsdom.
 */

import { formatValue } from './views';
import { clear, h } from './dom';
import { Run, RunFailure, RunStep, RunSummary } from './types';

/** What the panel does for the views' actions. */
export interface IRunActions {
  /** select the notebook's cell (0-based) and scroll to it */
  onJumpToCell: (cell: number) => void;
  /** open the report of `runId` (its overview, or `step`'s) in a main-area tab */
  onOpenReport: (runId: string, step: string | null) => void;
}

/** The report route of a run (API.md), under the server's base URL. */
export function reportUrl(baseUrl: string, runId: string, options: { step?: string | null; path?: string | null } = {}): string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const query = new URLSearchParams();
  if (options.step) {
    query.set('step', options.step);
  }
  if (options.path) {
    query.set('path', options.path);
  }
  const search = query.toString();
  return `${base}nb2pipe/runs/${encodeURIComponent(runId)}/report${search ? `?${search}` : ''}`;
}

/** The state a step is shown in: `waiting for inputs` for a running step whose inputs do not exist yet. */
export function stepState(step: RunStep): string {
  return step.status === 'running' && step.waiting ? 'waiting for inputs' : step.status;
}

/** A CSS-safe word for a state ("not run" -> "not-run", "waiting for inputs" -> "waiting"). */
function stateClass(state: string): string {
  return state.startsWith('waiting') ? 'waiting' : state.replace(/\s+/g, '-');
}

/** A step's report is written when it ends. */
function hasReport(step: RunStep): boolean {
  return step.status === 'succeeded' || step.status === 'failed';
}

/** "cell 5, line 2: message" (the cell counted from 1, as the notebook shows it). */
export function formatFailure(failure: RunFailure): string {
  const where: string[] = [`step ${failure.step}`];
  if (typeof failure.cell === 'number') {
    where.push(`cell ${failure.cell + 1}`);
  }
  if (typeof failure.line === 'number') {
    where.push(`line ${failure.line}`);
  }
  return `${where.join(', ')}: ${failure.message}`;
}

/** The run's status element (`run-status`): steps, metrics, the failure, the log, the report action. */
export function renderRunStatus(run: Run, actions: IRunActions): HTMLElement {
  const status = h(
    'div',
    {
      className: `nb2pipe-run-status nb2pipe-run-${stateClass(run.status)}`,
      'id-nb2pipe': 'run-status',
      'data-status': run.status,
      'data-run': run.run_id,
      'data-done': run.done ? 'true' : 'false'
    },
    h(
      'div',
      { className: 'nb2pipe-run-title' },
      h('span', { className: 'nb2pipe-run-id' }, run.run_id),
      ' ',
      h('span', { className: 'nb2pipe-run-state' }, run.status)
    )
  );
  const table = h('table', { className: 'nb2pipe-steps' });
  for (const step of run.steps ?? []) {
    const state = stepState(step);
    const report = hasReport(step)
      ? h('button', { type: 'button', className: 'nb2pipe-link-button', title: `Open the report of ${step.name}` }, 'report')
      : null;
    report?.addEventListener('click', () => actions.onOpenReport(run.run_id, step.name));
    table.appendChild(
      h(
        'tr',
        {
          'data-step': step.name,
          'data-status': step.status,
          'data-waiting': step.waiting ? 'true' : undefined,
          className: `nb2pipe-step nb2pipe-step-${stateClass(state)}`
        },
        h('td', { className: 'nb2pipe-step-name' }, step.name),
        h('td', { className: 'nb2pipe-step-status' }, state),
        h('td', { className: 'nb2pipe-step-seconds' }, typeof step.seconds === 'number' ? `${step.seconds.toFixed(1)} s` : ''),
        h('td', { className: 'nb2pipe-step-report' }, report)
      )
    );
  }
  status.appendChild(table);
  const metrics = Object.entries(run.metrics ?? {});
  if (metrics.length) {
    status.appendChild(
      h(
        'div',
        { className: 'nb2pipe-metrics' },
        ...metrics.map(([name, value]) =>
          h('span', { className: 'nb2pipe-metric', 'data-metric': name }, `${name} = ${formatValue(value)}`)
        )
      )
    );
  }
  if (run.failure) {
    status.appendChild(renderFailure(run.failure, actions));
  } else {
    for (const failure of run.failures ?? []) {
      status.appendChild(h('div', { className: 'nb2pipe-failure' }, `${failure.step}: ${failure.message}`));
    }
  }
  if (run.log) {
    status.appendChild(h('pre', { className: 'nb2pipe-log', 'id-nb2pipe': 'run-log' }, run.log));
  }
  if (run.done) {
    const open = h(
      'button',
      { type: 'button', className: 'nb2pipe-button', 'id-nb2pipe': 'open-report', title: "Open the run's report in a tab" },
      'Open report'
    );
    open.addEventListener('click', () => actions.onOpenReport(run.run_id, null));
    status.appendChild(h('div', { className: 'nb2pipe-run-actions' }, open));
  }
  return status;
}

function renderFailure(failure: RunFailure, actions: IRunActions): HTMLElement {
  const box = h(
    'div',
    {
      className: 'nb2pipe-failure',
      'id-nb2pipe': 'run-failure',
      'data-step': failure.step,
      'data-cell': typeof failure.cell === 'number' ? String(failure.cell) : undefined
    },
    formatFailure(failure)
  );
  if (typeof failure.cell === 'number') {
    const cell = failure.cell;
    const jump = h(
      'button',
      { type: 'button', className: 'nb2pipe-link-button', 'id-nb2pipe': 'go-to-cell', title: `Go to cell ${cell + 1}` },
      'go to cell'
    );
    jump.addEventListener('click', () => actions.onJumpToCell(cell));
    box.append(' ', jump);
  }
  return box;
}

/**
 * Mark the cell where the run failed (the cells' nodes, in notebook order), the way
 * diagnostics mark cells but with classes of its own, so the two do not clear each other.
 */
export function markFailedCell(cells: readonly HTMLElement[], failure: RunFailure | null | undefined): void {
  cells.forEach((node, index) => {
    node.classList.remove('nb2pipe-cell-failed');
    node.querySelectorAll(':scope > .nb2pipe-cell-run-failure').forEach(el => el.remove());
    if (!failure || failure.cell !== index) {
      return;
    }
    node.classList.add('nb2pipe-cell-failed');
    const text = formatFailure(failure);
    node.appendChild(h('div', { className: 'nb2pipe-cell-message nb2pipe-cell-run-failure nb2pipe-error', title: text }, text));
  });
}

/** "2026-12-01 17:05:01" in local time, or "" */
export function formatTime(epochSeconds: number | null): string {
  if (typeof epochSeconds !== 'number' || !Number.isFinite(epochSeconds)) {
    return '';
  }
  const d = new Date(epochSeconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** The notebook's last runs (newest first): status, start time, duration and a report link each. */
export function renderRunHistory(list: HTMLElement, runs: readonly RunSummary[], actions: Pick<IRunActions, 'onOpenReport'>): void {
  clear(list);
  if (!runs.length) {
    list.appendChild(h('li', { className: 'nb2pipe-empty' }, 'No runs yet.'));
    return;
  }
  for (const run of runs) {
    const seconds =
      typeof run.started === 'number' && typeof run.finished === 'number' ? ` (${(run.finished - run.started).toFixed(1)} s)` : '';
    // the overview is written when the run ends
    const ended = run.status !== 'running' && run.status !== 'starting';
    const report = ended
      ? h('button', { type: 'button', className: 'nb2pipe-link-button', title: `Open the report of ${run.run_id}` }, 'report')
      : null;
    report?.addEventListener('click', () => actions.onOpenReport(run.run_id, null));
    list.appendChild(
      h(
        'li',
        { className: `nb2pipe-history-run nb2pipe-run-${stateClass(run.status)}`, 'data-run': run.run_id, 'data-status': run.status },
        h('span', { className: 'nb2pipe-run-id' }, run.run_id),
        ' ',
        h('span', { className: 'nb2pipe-run-state' }, run.status),
        ' ',
        h('span', { className: 'nb2pipe-run-time' }, `${formatTime(run.started)}${seconds}`),
        ' ',
        report
      )
    );
  }
}

export interface RunHistoryOptions extends Pick<IRunActions, 'onOpenReport'> {
  /** GET /nb2pipe/runs?path=NB.ipynb for the notebook shown */
  load: (path: string) => Promise<RunSummary[]>;
}

/** A collapsible list (`run-history`) of the notebook's last runs, loaded when opened or refreshed. */
export class RunHistoryView {
  constructor(options: RunHistoryOptions) {
    this._options = options;
    this._list = h('ul', { className: 'nb2pipe-history' });
    this._note = h('div', { className: 'nb2pipe-note' });
    this.node = h(
      'details',
      { className: 'nb2pipe-run-history', 'id-nb2pipe': 'run-history' },
      h('summary', {}, 'Run history'),
      this._note,
      this._list
    );
    this.node.addEventListener('toggle', () => {
      if (this.node.open) {
        void this.refresh();
      }
    });
  }

  readonly node: HTMLDetailsElement;

  /** Follow notebook `path` (null: none); the list is reloaded when open. */
  setPath(path: string | null): Promise<void> {
    if (path !== this._path) {
      this._path = path;
      clear(this._list);
      this._note.textContent = '';
    }
    return this.refresh();
  }

  /** Reload the list if it is open (a closed one loads when opened). */
  async refresh(): Promise<void> {
    const path = this._path;
    if (!this.node.open || path === null) {
      return;
    }
    const request = ++this._request;
    try {
      const runs = await this._options.load(path);
      if (request === this._request) {
        this._note.textContent = '';
        renderRunHistory(this._list, runs, this._options);
      }
    } catch (error) {
      if (request === this._request) {
        clear(this._list);
        this._note.textContent = `No history: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
  }

  private _options: RunHistoryOptions;
  private _list: HTMLUListElement;
  private _note: HTMLDivElement;
  private _path: string | null = null;
  private _request = 0;
}
