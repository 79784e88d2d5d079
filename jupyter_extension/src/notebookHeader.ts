/**
 * The panel's header: the path of the notebook it follows, kept current when the notebook
 * is renamed or moved (File › Rename, the file browser), so actions and messages name it right.
 *
 * No JupyterLab imports: it takes anything with a `path` and a `pathChanged` signal (a
 * document context), so jest can drive it with a fake.
 */

import { h } from './dom';

/** The part of a Lumino signal the header uses. */
export interface IPathSignal {
  connect(slot: (sender: any, path: string) => void, thisArg?: unknown): boolean;
  disconnect(slot: (sender: any, path: string) => void, thisArg?: unknown): boolean;
}

/** A document context, as far as the header is concerned. */
export interface IPathSource {
  readonly path: string;
  readonly pathChanged: IPathSignal;
}

export const NO_NOTEBOOK = 'No notebook';

export class NotebookHeader {
  constructor(options: { onPathChanged?: (path: string) => void } = {}) {
    this._onPathChanged = options.onPathChanged;
    this.node = h('div', { className: 'nb2pipe-header', 'id-nb2pipe': 'header' }, NO_NOTEBOOK);
  }

  readonly node: HTMLDivElement;

  /** Show `source`'s path and follow its renames (null: no notebook). */
  follow(source: IPathSource | null): void {
    this._source?.pathChanged.disconnect(this._renamed, this);
    this._source = source;
    source?.pathChanged.connect(this._renamed, this);
    this._show(source ? source.path : null);
  }

  private _renamed(_sender: unknown, path: string): void {
    this._show(path);
    this._onPathChanged?.(path);
  }

  private _show(path: string | null): void {
    this.node.textContent = path ?? NO_NOTEBOOK;
    this.node.title = path ?? '';
  }

  private _source: IPathSource | null = null;
  private _onPathChanged?: (path: string) => void;
}
