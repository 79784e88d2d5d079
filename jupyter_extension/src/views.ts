/**
 * The panel's read-only views, drawn into the element they are given: the diagnostics list
 * and the run box (status table, metrics, failures, the Kubeflow link, endpoints). Plain
 * DOM, no JupyterLab imports, so jest renders them in jsdom.
 */

import { cellSeverities, formatDiagnostic, groupByCell } from './diagnostics';
import { clear, h } from './dom';
import { Deployment, Diagnostic, Run } from './types';

/** The diagnostics, by cell; an item of a cell calls `onJump(cell)` when clicked. */
export function renderDiagnosticList(
  list: HTMLElement,
  diagnostics: readonly Diagnostic[],
  onJump: (cell: number) => void
): void {
  clear(list);
  if (!diagnostics.length) {
    list.appendChild(h('li', { className: 'nb2pipe-empty' }, 'No problems.'));
  }
  for (const group of groupByCell([...diagnostics])) {
    for (const d of group.diagnostics) {
      const item = h(
        'li',
        {
          className: `nb2pipe-diagnostic nb2pipe-${d.severity}`,
          'data-cell': group.cell === null ? undefined : String(group.cell),
          'data-code': d.code,
          'data-severity': d.severity,
          title: `${d.severity}[${d.code}]${group.cell === null ? '' : ': click to go to the cell'}`
        },
        formatDiagnostic(d)
      );
      if (group.cell !== null) {
        const cell = group.cell;
        item.classList.add('nb2pipe-clickable');
        item.addEventListener('click', () => onJump(cell));
      }
      list.appendChild(item);
    }
  }
}

/** Mark the offending cells (their nodes, in notebook order): a class and the messages under each. */
export function markCells(cells: readonly HTMLElement[], diagnostics: readonly Diagnostic[]): void {
  const severities = cellSeverities(diagnostics);
  const byCell = new Map<number, Diagnostic[]>();
  for (const d of diagnostics) {
    if (typeof d.cell === 'number') {
      byCell.set(d.cell, [...(byCell.get(d.cell) ?? []), d]);
    }
  }
  cells.forEach((node, index) => {
    node.classList.remove('nb2pipe-cell-error', 'nb2pipe-cell-warning');
    node.querySelectorAll(':scope > .nb2pipe-cell-message').forEach(el => el.remove());
    const severity = severities.get(index);
    if (!severity) {
      return;
    }
    node.classList.add(severity === 'error' ? 'nb2pipe-cell-error' : 'nb2pipe-cell-warning');
    const text = (byCell.get(index) ?? []).map(formatDiagnostic).join('\n');
    node.appendChild(h('div', { className: `nb2pipe-cell-message nb2pipe-${severity}`, title: text }, text));
  });
}

export interface IRunBox {
  run: Run | null;
  /** the submitted run in the Kubeflow UI */
  runUrl: string | null;
  runId: string | null;
  deployments: readonly Deployment[];
}

/** The last run's status (`run-status`), the Kubeflow link (`run-link`) and the endpoints. */
export function renderRunBox(box: HTMLElement, { run, runUrl, runId, deployments }: IRunBox): void {
  clear(box);
  if (run) {
    box.appendChild(runStatus(run));
  }
  if (runUrl) {
    box.appendChild(
      h(
        'div',
        { className: 'nb2pipe-run-link-row' },
        'Kubeflow run: ',
        h('a', { href: runUrl, target: '_blank', rel: 'noopener noreferrer', 'id-nb2pipe': 'run-link' }, runId || runUrl)
      )
    );
  }
  const endpoints: { service: string; url: string | null; detail: string }[] = [
    ...deployments.map(d => ({ service: d.service, url: d.url, detail: `${d.target}, ${d.model_uri}` })),
    ...(run?.endpoints ?? []).map(e => ({ service: e.service, url: e.url, detail: 'from the run' }))
  ];
  if (endpoints.length) {
    const list = h('ul', { className: 'nb2pipe-endpoints', 'id-nb2pipe': 'endpoints' });
    for (const e of endpoints) {
      list.appendChild(
        h(
          'li',
          { 'data-service': e.service, title: e.detail },
          `${e.service}: `,
          e.url ? h('a', { href: e.url, target: '_blank', rel: 'noopener noreferrer' }, e.url) : h('span', {}, 'no URL yet')
        )
      );
    }
    box.appendChild(list);
  }
  if (!box.firstChild) {
    box.appendChild(h('div', { className: 'nb2pipe-empty' }, 'No run yet.'));
  }
}

function runStatus(run: Run): HTMLElement {
  const status = h(
    'div',
    {
      className: `nb2pipe-run-status nb2pipe-status-${run.status}`,
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
    table.appendChild(
      h(
        'tr',
        {
          'data-step': step.name,
          'data-status': step.status,
          className: `nb2pipe-status-${step.status.replace(/\s+/g, '-')}`
        },
        h('td', { className: 'nb2pipe-step-name' }, step.name),
        h('td', { className: 'nb2pipe-step-status' }, step.status),
        h('td', { className: 'nb2pipe-step-seconds' }, typeof step.seconds === 'number' ? `${step.seconds.toFixed(1)} s` : '')
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
  for (const failure of run.failures ?? []) {
    status.appendChild(h('div', { className: 'nb2pipe-failure' }, `${failure.step}: ${failure.message}`));
  }
  if (run.log) {
    status.appendChild(h('pre', { className: 'nb2pipe-log' }, run.log));
  }
  return status;
}

export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}
