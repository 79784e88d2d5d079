/**
 * The step graph at full size (the main-area view the panel's "Enlarge" opens): the same
 * layout and SVG as the sidebar (dag.ts), with zoom (wheel, buttons), pan (drag), fit to
 * the view, a click on a node (or Enter on it) going to its first cell, and a sub-pipeline's
 * button expanding or collapsing it.
 *
 * The view-box math is pure; GraphViewer is plain DOM. No JupyterLab imports: jest tests
 * this module directly (graphWidget.ts puts it in the main area).
 */

import { layout } from './dag';
import { dagTarget, toggled } from './dagGroups';
import { renderSvg } from './dagSvg';
import { clear, h } from './dom';
import { Graph } from './types';

export interface Size {
  width: number;
  height: number;
}

/** The part of the graph's own coordinates the view shows (an SVG viewBox). */
export interface ViewBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** How far one may zoom: screen pixels per graph unit. */
export const MIN_ZOOM = 0.1;
export const MAX_ZOOM = 8;
/** Each zoom button press, and the wheel's rate per pixel scrolled. */
export const ZOOM_STEP = 1.25;
export const WHEEL_RATE = 0.0015;
/** A press that moves less than this many pixels is a click, not a drag. */
export const CLICK_SLOP = 4;

/** Screen pixels per graph unit of `box` shown in `viewport` (the smaller of both axes). */
export function scaleOf(box: ViewBox, viewport: Size): number {
  return Math.min(viewport.width / box.width, viewport.height / box.height);
}

/**
 * The view box that shows all of `content` centred in `viewport` with `margin` screen
 * pixels around it, never enlarged past 1:1 (a small graph stays at its natural size).
 */
export function fitViewBox(content: Size, viewport: Size, margin = 16): ViewBox {
  const cw = Math.max(1, content.width);
  const ch = Math.max(1, content.height);
  const vw = Math.max(1, viewport.width);
  const vh = Math.max(1, viewport.height);
  const scale = Math.max(MIN_ZOOM, Math.min(1, (vw - 2 * margin) / cw, (vh - 2 * margin) / ch));
  const width = vw / scale;
  const height = vh / scale;
  return { x: (cw - width) / 2, y: (ch - height) / 2, width, height };
}

/**
 * Zoom by `factor` (> 1: closer) keeping the graph point `at` where it is on screen;
 * the resulting scale is held within MIN_ZOOM..MAX_ZOOM.
 */
export function zoomAt(box: ViewBox, factor: number, at: { x: number; y: number }, viewport: Size): ViewBox {
  const scale = scaleOf(box, viewport);
  const target = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, scale * factor));
  const applied = target / scale;
  const width = box.width / applied;
  const height = box.height / applied;
  return {
    x: at.x - (at.x - box.x) / applied,
    y: at.y - (at.y - box.y) / applied,
    width,
    height
  };
}

/** The view after dragging the graph by (dx, dy) screen pixels. */
export function panBy(box: ViewBox, dx: number, dy: number, viewport: Size): ViewBox {
  return {
    ...box,
    x: box.x - (dx * box.width) / Math.max(1, viewport.width),
    y: box.y - (dy * box.height) / Math.max(1, viewport.height)
  };
}

/** The graph point under (px, py), in pixels from the viewport's top left corner. */
export function toGraphPoint(box: ViewBox, px: number, py: number, viewport: Size): { x: number; y: number } {
  return {
    x: box.x + (px * box.width) / Math.max(1, viewport.width),
    y: box.y + (py * box.height) / Math.max(1, viewport.height)
  };
}

export function formatViewBox(box: ViewBox): string {
  const r = (v: number) => String(Math.round(v * 100) / 100);
  return `${r(box.x)} ${r(box.y)} ${r(box.width)} ${r(box.height)}`;
}

/** The first cell of node `id` (0-based, as in the graph), or null. */
export function firstCellOf(graph: Graph | null, id: string | null): number | null {
  const node = graph?.nodes.find(n => n.id === id);
  return node && node.cells?.length ? Math.min(...node.cells) : null;
}

export interface GraphViewerOptions {
  /** go to cell `index` of the graph's notebook */
  onJump: (cell: number) => void;
  /** the viewport's size (tests pass one: jsdom lays nothing out) */
  measure?: () => Size;
  /** a sub-pipeline's button was pressed; without it the viewer keeps which are expanded itself */
  onToggle?: (group: string) => void;
}

/** The full-size graph: a toolbar and the SVG, zoomed and panned through its viewBox. */
export class GraphViewer {
  readonly node: HTMLDivElement;

  constructor(options: GraphViewerOptions) {
    this._options = options;
    this._title = h('span', { className: 'nb2pipe-graph-view-title' });
    this._note = h('span', { className: 'nb2pipe-note' });
    const button = (id: string, label: string, title: string, run: () => void) => {
      const b = h('button', { type: 'button', className: 'nb2pipe-button', 'id-nb2pipe': id, title }, label);
      b.addEventListener('click', run);
      return b;
    };
    this._canvas = h('div', { className: 'nb2pipe-graph-view-canvas', 'id-nb2pipe': 'graph-view-canvas' });
    this.node = h(
      'div',
      { className: 'nb2pipe-graph-view', 'id-nb2pipe': 'graph-view' },
      h(
        'div',
        { className: 'nb2pipe-graph-view-toolbar' },
        button('graph-zoom-in', '+', 'zoom in', () => this.zoom(ZOOM_STEP)),
        button('graph-zoom-out', '\u2212', 'zoom out', () => this.zoom(1 / ZOOM_STEP)),
        button('graph-fit', 'Fit', 'show the whole graph', () => this.fit()),
        this._title,
        this._note
      ),
      this._canvas
    );
    this._canvas.addEventListener('wheel', event => this._onWheel(event), { passive: false });
    this._canvas.addEventListener('mousedown', event => this._onMouseDown(event));
    this._canvas.addEventListener('click', event => this._onClick(event));
    this._canvas.addEventListener('keydown', event => this._onKey(event));
  }

  get graph(): Graph | null {
    return this._graph;
  }

  get viewBox(): ViewBox | null {
    return this._box ? { ...this._box } : null;
  }

  /** The sub-pipelines shown expanded (notebook node ids). */
  get expanded(): ReadonlySet<string> {
    return this._expanded;
  }

  /**
   * Show `graph` (null: none yet, `note` says why), the sub-pipelines of `expanded` expanded
   * (left out: those expanded before). Keeps the zoom while the size stays.
   */
  setGraph(graph: Graph | null, note = '', expanded?: ReadonlySet<string>): void {
    this._note.textContent = note;
    if (expanded) {
      this._expanded = new Set(expanded);
    }
    this._graph = graph;
    if (!graph) {
      clear(this._canvas);
      this._svg = null;
      this._svgText = '';
      this._title.textContent = '';
      return;
    }
    this._title.textContent = `${graph.pipeline} (${graph.notebook})`;
    const text = renderSvg(
      graph,
      { 'data-nb2pipe-id': 'graph-view-svg', role: 'group', 'aria-label': `steps of ${graph.pipeline}` },
      this._expanded
    );
    if (text === this._svgText && this._svg) {
      return;
    }
    this._svgText = text;
    this._canvas.innerHTML = text;
    this._svg = this._canvas.querySelector('svg');
    if (this._svg) {
      this._svg.removeAttribute('style');
      this._svg.setAttribute('width', '100%');
      this._svg.setAttribute('height', '100%');
      this._svg.classList.add('nb2pipe-dag-large');
    }
    const lay = layout(graph, this._expanded);
    const size = { width: lay.width, height: lay.height };
    if (!this._box || !this._content || size.width !== this._content.width || size.height !== this._content.height) {
      this._content = size;
      this.fit();
    } else {
      this._apply();
    }
  }

  /** Show the whole graph. */
  fit(): void {
    if (!this._content) {
      return;
    }
    this._box = fitViewBox(this._content, this._viewport());
    this._apply();
  }

  /** Zoom by `factor` around the viewport's centre (or the graph point `at`). */
  zoom(factor: number, at?: { x: number; y: number }): void {
    if (!this._box) {
      return;
    }
    const centre = at ?? { x: this._box.x + this._box.width / 2, y: this._box.y + this._box.height / 2 };
    this._box = zoomAt(this._box, factor, centre, this._viewport());
    this._apply();
  }

  /** Move the view by (dx, dy) screen pixels. */
  pan(dx: number, dy: number): void {
    if (!this._box) {
      return;
    }
    this._box = panBy(this._box, dx, dy, this._viewport());
    this._apply();
  }

  private _viewport(): Size {
    const measured = this._options.measure?.() ?? {
      width: this._canvas.clientWidth,
      height: this._canvas.clientHeight
    };
    // not laid out yet (hidden): pretend the graph fits at its natural size
    if (measured.width > 0 && measured.height > 0) {
      return measured;
    }
    return { width: this._content?.width ?? 1, height: this._content?.height ?? 1 };
  }

  private _apply(): void {
    if (this._svg && this._box) {
      // the view box keeps the viewport's aspect ratio, so no letterboxing changes the math
      this._svg.setAttribute('viewBox', formatViewBox(this._box));
      this._svg.setAttribute('preserveAspectRatio', 'xMinYMin meet');
    }
  }

  private _offset(event: MouseEvent): { px: number; py: number } {
    const rect = this._canvas.getBoundingClientRect();
    return { px: event.clientX - rect.left, py: event.clientY - rect.top };
  }

  private _onWheel(event: WheelEvent): void {
    if (!this._box) {
      return;
    }
    event.preventDefault();
    const { px, py } = this._offset(event);
    const at = toGraphPoint(this._box, px, py, this._viewport());
    this.zoom(Math.exp(-event.deltaY * WHEEL_RATE), at);
  }

  private _onMouseDown(event: MouseEvent): void {
    if (event.button !== 0 || !this._box) {
      return;
    }
    let last = { x: event.clientX, y: event.clientY };
    const start = last;
    this._dragged = false;
    const move = (e: MouseEvent) => {
      if (!this._dragged && Math.hypot(e.clientX - start.x, e.clientY - start.y) < CLICK_SLOP) {
        return;
      }
      this._dragged = true;
      this._canvas.classList.add('nb2pipe-dragging');
      this.pan(e.clientX - last.x, e.clientY - last.y);
      last = { x: e.clientX, y: e.clientY };
    };
    const up = () => {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      this._canvas.classList.remove('nb2pipe-dragging');
    };
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }

  private _onClick(event: MouseEvent): void {
    if (this._dragged) {
      this._dragged = false;
      return;
    }
    this._activate(event.target);
  }

  private _onKey(event: KeyboardEvent): void {
    if ((event.key === 'Enter' || event.key === ' ') && dagTarget(event.target)) {
      event.preventDefault();
      this._activate(event.target);
    }
  }

  /** A click or Enter on `target`: a sub-pipeline's button toggles it, a node goes to its cell. */
  private _activate(target: EventTarget | null): void {
    const hit = dagTarget(target);
    if (hit && 'toggle' in hit) {
      if (this._options.onToggle) {
        this._options.onToggle(hit.toggle);
      } else {
        this.setGraph(this._graph, this._note.textContent ?? '', toggled(this._expanded, hit.toggle));
      }
      // the SVG was drawn again: keep the keyboard on the same button
      focusToggle(this._canvas, hit.toggle);
      return;
    }
    const cell = firstCellOf(this._graph, hit && 'node' in hit ? hit.node : null);
    if (cell !== null) {
      this._options.onJump(cell);
    }
  }

  private _options: GraphViewerOptions;
  private _title: HTMLSpanElement;
  private _note: HTMLSpanElement;
  private _canvas: HTMLDivElement;
  private _graph: Graph | null = null;
  private _svg: SVGSVGElement | null = null;
  private _svgText = '';
  private _content: Size | null = null;
  private _box: ViewBox | null = null;
  private _dragged = false;
  private _expanded: ReadonlySet<string> = new Set();
}

/** Focus the button of sub-pipeline `group` in `root` (after the SVG was drawn again). */
export function focusToggle(root: Element, group: string): void {
  const button = [...root.querySelectorAll('[data-toggle]')].find(b => b.getAttribute('data-toggle') === group);
  (button as unknown as HTMLOrSVGElement | undefined)?.focus?.();
}
