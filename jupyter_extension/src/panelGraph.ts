/**
 * The sidebar's Graph section: the step graph (dag.ts), its note, the Enlarge button and window,
 * the cell badges (cellBadges.ts), and the debounced graph request for a notebook's current content.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { NB2PipeError, post } from './api';
import { NOTHING_TO_COMPILE, nothingToCompile, renderBadges } from './cellBadges';
import { dagTarget } from './dagGroups';
import { renderSvg } from './dagSvg';
import { h } from './dom';
import { focusToggle } from './graphView';
import { GraphWindow } from './graphWidget';
import { NotebookState } from './panelState';
import { Graph } from './types';

/** Each cell's source, in notebook order. */
export function cellSources(panel: NotebookPanel): string[] {
  return panel.content.widgets.map(c => c.model.sharedModel.getSource());
}

/** Ask the server for `panel`'s graph; a newer request makes an older answer moot. */
export function requestGraph(panel: NotebookPanel, state: NotebookState, onAnswer: () => void): void {
  if (!panel.model) {
    return;
  }
  const request = ++state.graphRequest;
  const body = { path: panel.context.path, notebook: panel.model.toJSON() };
  post<Graph>('graph', body).then(
    graph => {
      if (request !== state.graphRequest) {
        return;
      }
      state.graph = graph;
      state.graphError = '';
      state.diagnostics = graph.diagnostics ?? [];
      onAnswer();
    },
    error => {
      if (request !== state.graphRequest) {
        return;
      }
      if (error instanceof NB2PipeError && error.status === 422) {
        state.diagnostics = error.diagnostics;
        state.graphError = `The graph is out of date: ${error.message}`;
      } else {
        state.graphError = `No graph: ${error instanceof Error ? error.message : String(error)}`;
      }
      onAnswer();
    }
  );
}

export interface IGraphSectionOptions {
  /** select cell `index` of the followed notebook */
  onJump: (index: number) => void;
  /** the followed notebook's state now (a click on a step goes to its first cell) */
  currentState: () => NotebookState | null;
  /** show a widget in the main area; without it there is no Enlarge button */
  openWidget?: (widget: Widget, mode?: 'split-right') => void;
}

export class GraphSection {
  constructor(options: IGraphSectionOptions) {
    this._options = options;
    this.dag = h('div', { className: 'nb2pipe-dag-box' });
    this.note = h('div', { className: 'nb2pipe-note' });
    this.dag.addEventListener('click', event => this._onDagClick(event.target));
    this.dag.addEventListener('keydown', event => {
      if ((event.key === 'Enter' || event.key === ' ') && dagTarget(event.target)) {
        event.preventDefault();
        this._onDagClick(event.target);
      }
    });
    this._window = new GraphWindow({
      onJump: cell => options.onJump(cell),
      show: w => options.openWidget?.(w, 'split-right'),
      onToggle: group => this.toggle(group)
    });
    this.enlarge = h(
      'button',
      { type: 'button', className: 'nb2pipe-button nb2pipe-enlarge', 'id-nb2pipe': 'enlarge-graph', title: 'the graph at full size: zoom, pan, click a step' },
      'Enlarge'
    );
    this.enlarge.addEventListener('click', () => this.open(options.currentState()));
    this.enlarge.hidden = !options.openWidget;
  }

  readonly enlarge: HTMLButtonElement;
  readonly note: HTMLDivElement;
  readonly dag: HTMLDivElement;

  /** Draw `state`'s graph and `panel`'s cell badges. */
  render(state: NotebookState | null, panel: NotebookPanel | null): void {
    this._panel = panel;
    const graph = state?.graph ?? null;
    this.note.textContent = state?.graphError ?? '';
    this.dag.classList.toggle('nb2pipe-stale', !!state?.graphError);
    if (!graph) {
      this.dag.innerHTML = '';
      this.note.textContent = state?.graphError || (state ? 'Building the graph…' : '');
      this._renderBadges(state, panel);
      this._window.update(null, this.note.textContent);
      return;
    }
    const expanded = state?.expandedGroups ?? new Set<string>();
    const svg = renderSvg(graph, { 'data-nb2pipe-id': 'dag', role: 'group', 'aria-label': `steps of ${graph.pipeline}` }, expanded);
    if (svg !== this._lastSvg || !this.dag.firstChild) {
      this.dag.innerHTML = svg;
      this._lastSvg = svg;
    }
    this._renderBadges(state, panel);
    this._window.update(graph, state?.graphError ?? '', expanded);
  }

  /** Expand or collapse sub-pipeline `group` of the followed notebook (kept per notebook), here and in the tab. */
  toggle(group: string): void {
    const state = this._options.currentState();
    if (!state) {
      return;
    }
    if (!state.expandedGroups.delete(group)) {
      state.expandedGroups.add(group);
    }
    this.render(state, this._panel);
  }

  /** The graph at full size in the main area (zoom, pan, click a step to go to its cell). */
  open(state: NotebookState | null): void {
    this._window.open(state?.graph ?? null, state?.graphError || (state ? '' : 'Open a notebook first.'), state?.expandedGroups);
  }

  /** Each code cell's step or role on the cell itself (cellBadges.ts); the note when no code would run. */
  private _renderBadges(state: NotebookState | null, panel: NotebookPanel | null): void {
    if (!panel) {
      return;
    }
    const graph = state?.graph ?? null;
    renderBadges(
      panel.content.widgets.map(c => c.node),
      graph,
      !!state?.graphError
    );
    if (graph && !state?.graphError && nothingToCompile(graph, cellSources(panel))) {
      this.note.textContent = NOTHING_TO_COMPILE;
    }
  }

  /** A click or Enter: a sub-pipeline's button expands or collapses it, a node goes to its first cell. */
  private _onDagClick(target: EventTarget | null): void {
    const hit = dagTarget(target);
    const graph = this._options.currentState()?.graph ?? null;
    if (!hit || !graph) {
      return;
    }
    if ('toggle' in hit) {
      this.toggle(hit.toggle);
      focusToggle(this.dag, hit.toggle); // the SVG was drawn again: keep the keyboard on the button
      return;
    }
    const found = graph.nodes.find(n => n.id === hit.node);
    if (found && found.cells?.length) {
      this._options.onJump(found.cells[0]);
    }
  }

  private _options: IGraphSectionOptions;
  private _window: GraphWindow;
  private _lastSvg = '';
  private _panel: NotebookPanel | null = null;
}
