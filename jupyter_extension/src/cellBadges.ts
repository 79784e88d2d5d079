/**
 * A badge on every code cell of the notebook saying which step it belongs to, or its role
 * (imports, functions, pipeline-parameters, pipeline-metrics, skip, notebook, no step), from the graph
 * the panel fetches on every edit. Each step has its own colour, derived from its name so it
 * stays the same across edits and reloads. Badges live in the DOM only (never in the
 * notebook's JSON) and are dimmed while the graph is out of date.
 *
 * No JupyterLab imports: the panel hands over the cells' nodes, so jest can test this module.
 */

import { h } from './dom';
import { Graph, GraphCell } from './types';

export const BADGE_CLASS = 'nb2pipe-cell-badge';

/** The tag users know for each role, shown on the badge. */
export const ROLE_LABELS: Record<string, string> = {
  imports: 'imports',
  functions: 'functions',
  parameters: 'pipeline-parameters',
  metrics: 'pipeline-metrics',
  skip: 'skip',
  notebook: 'notebook',
  unassigned: 'no step'
};

const ROLE_TITLES: Record<string, string> = {
  imports: 'runs at the start of every step',
  functions: 'defined at the start of every step',
  parameters: 'becomes the pipeline’s parameters',
  metrics: 'logged as the pipeline’s metrics',
  skip: 'left out of the pipeline',
  notebook: 'runs another notebook’s pipeline as a sub-pipeline',
  unassigned: 'above the first step: left out of the pipeline (tag it imports, functions, step:NAME or skip)'
};

export interface CellBadge {
  cell: number;
  /** the step's name, or the role's label */
  text: string;
  /** `step` or the cell's role */
  role: string;
  step: string | null;
  /** a CSS colour for a step, null for a role (styled by class) */
  colour: string | null;
  title: string;
}

/** A stable colour for a step: the same name always gives the same hue. */
export function stepColour(name: string): string {
  let hash = 2166136261; // FNV-1a: cheap, and neighbouring names land far apart
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  const hue = (hash >>> 0) % 360;
  return `hsl(${hue}, 60%, 40%)`;
}

/** The badge of each code cell, by cell index. Uses the graph's `cells`; a graph without
 * them (from an older server) badges the step nodes' cells only. */
export function badgeModel(graph: Graph | null): Map<number, CellBadge> {
  const badges = new Map<number, CellBadge>();
  if (!graph) {
    return badges;
  }
  const places: GraphCell[] = graph.cells ?? [];
  if (!graph.cells) {
    for (const node of graph.nodes.filter(n => n.kind === 'step')) {
      places.push(...node.cells.map(cell => ({ cell, step: node.id, role: 'step' })));
    }
  }
  for (const place of places) {
    if (place.step) {
      badges.set(place.cell, {
        cell: place.cell,
        text: place.step,
        role: 'step',
        step: place.step,
        colour: stepColour(place.step),
        title: `step ${place.step}`
      });
    } else {
      badges.set(place.cell, {
        cell: place.cell,
        text: ROLE_LABELS[place.role] ?? place.role,
        role: place.role,
        step: null,
        colour: null,
        title: place.role === 'notebook' ? notebookTitle(graph, place.cell) : ROLE_TITLES[place.role] ?? place.role
      });
    }
  }
  return badges;
}

/** A `notebook:` cell's tooltip: the sub-pipeline task and the notebook it runs, from the graph's node of that cell. */
function notebookTitle(graph: Graph, cell: number): string {
  const node = graph.nodes.find(n => n.kind === 'notebook' && n.cells.includes(cell));
  const runs = node ? `task ${node.id}: runs ${node.label.replace(/^notebook /, '')}’s pipeline as a sub-pipeline` : '';
  return runs || ROLE_TITLES.notebook;
}

/** Put the graph's badges on `cells` (the notebook's cell nodes, in order); `stale` dims them.
 * Cells the graph does not place (markdown, or cells added since) lose their badge. */
export function renderBadges(cells: readonly HTMLElement[], graph: Graph | null, stale = false): void {
  const badges = badgeModel(graph);
  cells.forEach((node, index) => {
    const badge = badges.get(index);
    let element = node.querySelector<HTMLElement>(`:scope > .${BADGE_CLASS}`);
    if (!badge) {
      element?.remove();
      return;
    }
    if (!element) {
      element = h('div', { className: BADGE_CLASS });
      node.appendChild(element);
    }
    element.className = `${BADGE_CLASS} nb2pipe-badge-${badge.role}${stale ? ' nb2pipe-badge-stale' : ''}`;
    element.textContent = badge.text;
    element.title = stale ? `${badge.title} (out of date: the notebook does not compile)` : badge.title;
    element.setAttribute('data-nb2pipe-step', badge.step ?? '');
    element.setAttribute('data-nb2pipe-role', badge.role);
    element.style.backgroundColor = badge.colour ?? '';
  });
}

/** Remove every badge from `cells`. */
export function clearBadges(cells: readonly HTMLElement[]): void {
  for (const node of cells) {
    node.querySelectorAll(`:scope > .${BADGE_CLASS}`).forEach(el => el.remove());
  }
}

/** True when the pipeline would run no code: every step cell is blank (a notebook with one
 * empty cell compiles to one empty step). `sources`: each cell's text, by index. */
export function nothingToCompile(graph: Graph | null, sources: readonly string[]): boolean {
  if (!graph) {
    return false;
  }
  const stepCells = badgeModel(graph);
  const code = [...stepCells.values()].filter(b => b.step !== null && (sources[b.cell] ?? '').trim() !== '');
  return code.length === 0;
}

export const NOTHING_TO_COMPILE = 'Nothing to compile: tag a cell or add code.';
