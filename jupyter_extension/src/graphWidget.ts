/**
 * The full-size graph (graphView.ts's GraphViewer) as a main-area tab: one tab, opened by
 * the panel's "Enlarge" (or the `nb2pipe:show-graph` command), following the panel's graph.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { GraphViewer } from './graphView';
import { Graph } from './types';

class GraphContent extends Widget {
  constructor(readonly viewer: GraphViewer) {
    super({ node: viewer.node });
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    if (!this._fitted && msg.width > 0 && msg.height > 0) {
      // the first real size: fit to it once; afterwards the user's zoom is kept
      this._fitted = true;
      this.viewer.fit();
    }
  }

  private _fitted = false;
}

export interface GraphWindowOptions {
  /** go to cell `index` of the panel's notebook */
  onJump: (cell: number) => void;
  /** put the widget in the main area and activate it */
  show: (widget: Widget) => void;
  /** a sub-pipeline's button was pressed in the tab (the panel keeps which are expanded) */
  onToggle?: (group: string) => void;
}

/** Owns the tab: created on the first open, recreated after it was closed. */
export class GraphWindow {
  constructor(options: GraphWindowOptions) {
    this._options = options;
  }

  /** Open (or bring forward) the tab showing `graph`, the sub-pipelines of `expanded` expanded. */
  open(graph: Graph | null, note = '', expanded?: ReadonlySet<string>): void {
    if (!this._widget || this._widget.isDisposed) {
      const viewer = new GraphViewer({ onJump: this._options.onJump, onToggle: this._options.onToggle });
      const widget = new MainAreaWidget({ content: new GraphContent(viewer) });
      widget.id = 'nb2pipe-graph-view';
      widget.title.label = 'Pipeline graph';
      widget.title.closable = true;
      this._widget = widget;
    }
    this.update(graph, note, expanded);
    this._options.show(this._widget);
  }

  /** Follow the panel's graph while the tab is open. */
  update(graph: Graph | null, note = '', expanded?: ReadonlySet<string>): void {
    const widget = this._widget;
    if (!widget || widget.isDisposed) {
      return;
    }
    widget.content.viewer.setGraph(graph, note, expanded);
    widget.title.label = graph ? `Graph: ${graph.pipeline}` : 'Pipeline graph';
  }

  private _options: GraphWindowOptions;
  private _widget: MainAreaWidget<GraphContent> | null = null;
}
