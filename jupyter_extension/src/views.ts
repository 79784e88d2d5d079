/**
 * The panel's read-only views, drawn into the element they are given: the diagnostics list
 * and the run box (the run's status as runResults.ts draws it, the Kubeflow link, endpoints).
 * Plain DOM, no JupyterLab imports, so jest renders them in jsdom.
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
  /** the run's status, drawn by runResults.ts (`renderRunStatus`); first in the box */
  status: HTMLElement | null;
  /** the submitted run in the Kubeflow UI */
  runUrl: string | null;
  runId: string | null;
  deployments: readonly Deployment[];
}

/** The `target` of an endpoint a run's deploy task started. */
export const FROM_THE_RUN = 'from the run';

/**
 * What the run box lists: the deployments, then the services `run` started, each service at
 * one URL listed once. A run that deploys and a local Deploy after it serve the same service at
 * the same URL (Deploy restarts that server in place): one server, so one row, the Deploy's.
 */
export function listedEndpoints(deployments: readonly Deployment[], run: Run | null): Deployment[] {
  const fromRun = (run?.endpoints ?? []).map(e => ({ ...e, target: FROM_THE_RUN, model_uri: run?.run_id ?? '' }));
  const seen = new Set<string>();
  return [...deployments, ...fromRun].filter(d => {
    if (!d.url) {
      return true;
    }
    const key = `${d.service}\u0000${d.url.replace(/\/+$/, '')}`;
    const first = !seen.has(key);
    seen.add(key);
    return first;
  });
}

/**
 * The run's status, the Kubeflow link (`run-link`) and the endpoints, or "No run yet." A service
 * listed more than once (at different URLs: a run's local server and a cluster Deploy) says where
 * each row comes from.
 */
export function renderRunBox(box: HTMLElement, { status, runUrl, runId, deployments }: IRunBox): void {
  clear(box);
  if (status) {
    box.appendChild(status);
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
  if (deployments.length) {
    const list = h('ul', { className: 'nb2pipe-endpoints', 'id-nb2pipe': 'endpoints' });
    const rows = new Map<string, number>();
    deployments.forEach(d => rows.set(d.service, (rows.get(d.service) ?? 0) + 1));
    for (const d of deployments) {
      list.appendChild(
        h(
          'li',
          { 'data-service': d.service, 'data-target': d.target, title: `${d.target}, ${d.model_uri}` },
          rows.get(d.service)! > 1 ? `${d.service} (${d.target}): ` : `${d.service}: `,
          d.url ? h('a', { href: d.url, target: '_blank', rel: 'noopener noreferrer' }, d.url) : h('span', {}, 'no URL yet')
        )
      );
    }
    box.appendChild(list);
  }
  if (!box.firstChild) {
    box.appendChild(h('div', { className: 'nb2pipe-empty' }, 'No run yet.'));
  }
}

/** A metric's value as the run status shows it: integers whole, other numbers to 4 significant digits. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}
