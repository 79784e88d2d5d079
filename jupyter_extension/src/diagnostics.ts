/**
 * Diagnostics (API.md: `cell` is the 0-based cell index) grouped by cell and formatted as
 * the CLI does: "cell N [E], line L: message (hint)", with N counted from 1 like the
 * notebook's own cell numbers and E the execution count when there is one.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { Diagnostic } from './types';

export interface CellDiagnostics {
  /** 0-based cell index, or null for the notebook as a whole */
  cell: number | null;
  diagnostics: Diagnostic[];
}

/** `cell 3 [7], line 2: message (hint)`; the parts that are unknown are left out. */
export function formatDiagnostic(d: Diagnostic): string {
  const where: string[] = [];
  if (typeof d.cell === 'number') {
    const count = typeof d.execution_count === 'number' ? ` [${d.execution_count}]` : '';
    where.push(`cell ${d.cell + 1}${count}`);
  }
  if (typeof d.line === 'number') {
    where.push(`line ${d.line}`);
  }
  const hint = d.hint ? ` (${d.hint})` : '';
  const prefix = where.length ? `${where.join(', ')}: ` : '';
  return `${prefix}${d.message}${hint}`;
}

/** By cell index, notebook-wide ones first; errors before warnings, then in given order. */
export function groupByCell(diagnostics: readonly Diagnostic[]): CellDiagnostics[] {
  const groups = new Map<number | null, Diagnostic[]>();
  for (const d of diagnostics) {
    const cell = typeof d.cell === 'number' ? d.cell : null;
    if (!groups.has(cell)) {
      groups.set(cell, []);
    }
    groups.get(cell)!.push(d);
  }
  const rank = (d: Diagnostic) => (d.severity === 'error' ? 0 : 1);
  return [...groups.entries()]
    .sort(([a], [b]) => (a === null ? -1 : b === null ? 1 : a - b))
    .map(([cell, list]) => ({
      cell,
      diagnostics: list
        .map((d, i) => [d, i] as const)
        .sort(([x, i], [y, j]) => rank(x) - rank(y) || i - j)
        .map(([d]) => d)
    }));
}

/** The worst severity per cell (for marking cells in the notebook). */
export function cellSeverities(diagnostics: readonly Diagnostic[]): Map<number, 'error' | 'warning'> {
  const out = new Map<number, 'error' | 'warning'>();
  for (const d of diagnostics) {
    if (typeof d.cell !== 'number') {
      continue;
    }
    if (d.severity === 'error' || !out.has(d.cell)) {
      out.set(d.cell, d.severity === 'error' ? 'error' : out.get(d.cell) ?? 'warning');
    }
  }
  return out;
}

/** "2 errors, 1 warning" */
export function summarize(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter(d => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const parts: string[] = [];
  if (errors) {
    parts.push(`${errors} error${errors === 1 ? '' : 's'}`);
  }
  if (warnings) {
    parts.push(`${warnings} warning${warnings === 1 ? '' : 's'}`);
  }
  return parts.join(', ') || 'no problems';
}
