/**
 * The nb2pipe sidebar: the active notebook's settings, the active cell's tags, the four
 * actions (compile, run locally, submit to Kubeflow, deploy), the step graph, diagnostics,
 * the compiled YAML and the run's status. Plain DOM in a Lumino widget.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { NB2PipeError } from './api';
import { clearBadges } from './cellBadges';
import { TagEditor } from './cellEditor';
import { append, h } from './dom';
import { describeErrors, ParametersForm } from './parametersForm';
import {
  Cell,
  cellTagsHost,
  compileNotebook,
  deployNotebook,
  followRun,
  notebookSettingsHost,
  startRun,
  submitNotebook
} from './panelActions';
import { cellSources, GraphSection, requestGraph } from './panelGraph';
import { ProblemsSection, RunSection } from './panelRunSection';
import { ACTION_LABELS, Action, DEFAULT_SETTINGS, NotebookState, PanelSettings, runningRunId } from './panelState';
import { ActionBar } from './panelToolbar';
import { NotebookHeader } from './notebookHeader';
import { openReportTab, serverReportUrl } from './reportWidget';
import { SettingsForm } from './settingsForm';

export interface NB2PipePanelOptions {
  /** bring the notebook to the front (after a jump to one of its cells) */
  activateNotebook?: (panel: NotebookPanel) => void;
  /** show a widget (a run's report) in the main area; without it the report opens in a browser tab */
  openWidget?: (widget: Widget, mode?: 'split-right') => void;
}

export class NB2PipePanel extends Widget {
  constructor(options: NB2PipePanelOptions = {}) {
    super();
    this._options = options;
    this.addClass('nb2pipe-panel');
    this.node.setAttribute('data-nb2pipe-id', 'panel');
    this.title.caption = 'nb2pipe';

    // a rename changes the path every request names: rebuild the graph under the new one
    this._header = new NotebookHeader({ onPathChanged: () => this._scheduleGraph() });
    this._message = h('div', { className: 'nb2pipe-message', 'id-nb2pipe': 'message', role: 'status' });
    this._actions = new ActionBar(action => void this.execute(action));

    this._graph = new GraphSection({
      onJump: cell => this.jumpToCell(cell),
      currentState: () => this._state,
      openWidget: options.openWidget
    });
    this._problems = new ProblemsSection(cell => this.jumpToCell(cell));
    this._tagEditor = new TagEditor({
      onMessage: (text, kind) => this._say(this._state, text, kind),
      onApplied: () => this._scheduleGraph()
    });
    this._settingsForm = new SettingsForm();
    this._parametersForm = new ParametersForm();
    this._run = new RunSection({
      onJumpToCell: cell => this.jumpToCell(cell),
      onOpenReport: (runId, step) => this.openReport(runId, step)
    });
    this._yaml = h('pre', { className: 'nb2pipe-yaml', 'id-nb2pipe': 'yaml' });

    const section = (title: string, ...children: (Node | null)[]) =>
      h('section', { className: 'nb2pipe-section' }, h('h3', { className: 'nb2pipe-section-title' }, title), ...children);
    append(
      this.node,
      this._header.node,
      this._actions.node,
      this._message,
      section('Graph', this._graph.enlarge, this._graph.note, this._graph.dag),
      section('Problems', this._problems.list),
      section('Parameters', this._parametersForm.node),
      section('Run', this._run.runBox, this._run.deployBox, this._run.history.node),
      section('Cell', this._tagEditor.node),
      section('Notebook settings', this._settingsForm.node),
      section('Pipeline YAML', this._yaml)
    );
    this._render();
  }

  /** The notebook the panel follows. */
  get notebook(): NotebookPanel | null {
    return this._notebook;
  }

  get settings(): PanelSettings {
    return { ...this._settings };
  }

  set settings(value: PanelSettings) {
    const changedTarget = value.deployTarget !== this._settings.deployTarget;
    this._settings = { ...value };
    if (changedTarget) {
      this._actions.deployTarget = value.deployTarget;
    }
  }

  /** Follow `panel` (null: no notebook is open). */
  setNotebook(panel: NotebookPanel | null): void {
    if (panel === this._notebook) {
      return;
    }
    const old = this._notebook;
    if (old && !old.isDisposed) {
      old.model?.contentChanged.disconnect(this._onContentChanged, this);
      old.model?.metadataChanged.disconnect(this._onMetadataChanged, this);
      old.disposed.disconnect(this._onNotebookDisposed, this);
      // the panel stops updating them: stale badges would mislead after the next edit
      clearBadges(old.content.widgets.map(c => c.node));
    }
    this._notebook = panel;
    this._header.follow(panel ? panel.context : null);
    if (panel) {
      panel.disposed.connect(this._onNotebookDisposed, this);
      void panel.context.ready.then(() => {
        if (this._notebook !== panel || !panel.model) {
          return;
        }
        panel.model.contentChanged.connect(this._onContentChanged, this);
        panel.model.metadataChanged.connect(this._onMetadataChanged, this);
        this._settingsForm.setHost(notebookSettingsHost(panel));
        this._refreshGraph(this._stateOf(panel));
      });
    } else {
      this._settingsForm.setHost(null);
    }
    this.setActiveCell(panel ? panel.content.activeCell : null);
    void this._run.history.setPath(panel ? panel.context.path : null);
    this._render();
  }

  /** Follow the active cell of the notebook. */
  setActiveCell(cell: Cell | null): void {
    if (this._cell && !this._cell.isDisposed) {
      this._cell.model.metadataChanged.disconnect(this._onCellMetadataChanged, this);
    }
    this._cell = cell;
    if (!cell) {
      this._tagEditor.setCell(null);
      return;
    }
    cell.model.metadataChanged.connect(this._onCellMetadataChanged, this);
    this._tagEditor.setCell(cellTagsHost(cell, this._notebook));
  }

  /** Run one of the four actions on the current notebook. */
  async execute(action: Action): Promise<void> {
    const panel = this._notebook;
    if (!panel) {
      this._say(null, 'Open a notebook first.', 'error');
      return;
    }
    const state = this._stateOf(panel);
    if (state.busy.has(action)) {
      return;
    }
    const { parameters, errors } = this._parametersForm.values();
    if ((action === 'run' || action === 'submit') && Object.keys(errors).length) {
      this._say(state, `${ACTION_LABELS[action]}: fix the parameters first (${describeErrors(errors)}).`, 'error');
      return;
    }
    state.busy.add(action);
    this._say(state, `${ACTION_LABELS[action]}: saving the notebook…`, 'info');
    this._render();
    try {
      await panel.context.save();
      const path = panel.context.path;
      this._say(state, `${ACTION_LABELS[action]}: working…`, 'info');
      const say = (target: NotebookState, text: string, kind: 'info' | 'error') => this._say(target, text, kind);
      switch (action) {
        case 'compile':
          await compileNotebook(state, path, () => (this._notebook ? cellSources(this._notebook) : null), say);
          break;
        case 'run':
          this._poll(state, await startRun(state, path, parameters, say));
          break;
        case 'submit':
          await submitNotebook(state, path, parameters, say);
          break;
        case 'deploy':
          await deployNotebook(state, path, this._actions.deployTarget, say);
          break;
      }
    } catch (error) {
      this._fail(state, `${ACTION_LABELS[action]} failed`, error);
      const running = error instanceof NB2PipeError ? runningRunId(error.status, error.body) : null;
      if (action === 'run' && running) {
        // a run of this notebook started elsewhere (another tab, a reload): follow it
        state.runId = running;
        this._poll(state, running);
      }
    } finally {
      state.busy.delete(action);
      this._render();
    }
  }

  /** Open a run's report (its overview, or `step`'s) in a main-area tab. */
  openReport(runId: string, step: string | null): void {
    const path = this._notebook?.context.path ?? null;
    if (this._options.openWidget) {
      openReportTab(runId, step, path, this._options.openWidget);
    } else {
      window.open(serverReportUrl(runId, step, path), '_blank', 'noopener');
    }
  }

  /** Select cell `index` of the notebook and scroll to it. */
  jumpToCell(index: number): void {
    const panel = this._notebook;
    if (!panel || index < 0 || index >= panel.content.widgets.length) {
      return;
    }
    const notebook = panel.content;
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    const cell = notebook.widgets[index];
    if (cell) {
      void notebook.scrollToCell(cell).catch(() => undefined);
    }
    this._options.activateNotebook?.(panel);
  }

  protected onBeforeShow(): void {
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.setNotebook(null);
    super.dispose();
  }

  // --- following a run ------------------------------------------------------------------

  private _poll(state: NotebookState, runId: string): void {
    followRun(state, runId, {
      interval: this._settings.pollInterval,
      onChange: () => this._renderIf(state),
      onDone: () => {
        if (this._state === state) {
          void this._run.history.refresh();
        }
      },
      say: (target, text, kind) => this._say(target, text, kind),
      fail: (what, error) => this._fail(state, what, error)
    });
  }

  // --- the graph ------------------------------------------------------------------------

  private _onContentChanged(): void {
    this._scheduleGraph();
  }

  private _onMetadataChanged(): void {
    this._settingsForm.refresh();
  }

  private _onCellMetadataChanged(): void {
    this._tagEditor.refresh();
    // a cell's metadata change does not reach the notebook's contentChanged
    this._scheduleGraph();
  }

  private _onNotebookDisposed(sender: NotebookPanel): void {
    const state = this._states.get(sender);
    state?.poller?.stop();
    if (state?.graphTimer) {
      clearTimeout(state.graphTimer);
    }
    if (this._notebook === sender) {
      this.setNotebook(null);
    }
  }

  private _scheduleGraph(): void {
    const panel = this._notebook;
    if (!panel) {
      return;
    }
    const state = this._stateOf(panel);
    if (state.graphTimer) {
      clearTimeout(state.graphTimer);
    }
    state.graphTimer = setTimeout(() => {
      state.graphTimer = null;
      if (this._notebook === panel) {
        this._refreshGraph(state);
      }
    }, this._settings.graphDebounce);
  }

  private _refreshGraph(state: NotebookState): void {
    const panel = this._notebook;
    if (panel) {
      requestGraph(panel, state, () => this._renderIf(state));
    }
  }

  // --- rendering ------------------------------------------------------------------------

  private _stateOf(panel: NotebookPanel): NotebookState {
    let state = this._states.get(panel);
    if (!state) {
      state = new NotebookState();
      this._states.set(panel, state);
    }
    return state;
  }

  private get _state(): NotebookState | null {
    return this._notebook ? this._stateOf(this._notebook) : null;
  }

  private _say(state: NotebookState | null, text: string, kind: 'info' | 'error'): void {
    const target = state ?? this._state;
    if (target) {
      target.message = text;
      target.messageKind = kind;
      this._renderIf(target);
    } else {
      this._message.textContent = text;
      this._message.className = `nb2pipe-message nb2pipe-message-${kind}`;
    }
  }

  private _fail(state: NotebookState, what: string, error: unknown): void {
    if (error instanceof NB2PipeError) {
      if (error.diagnostics.length) {
        state.diagnostics = error.diagnostics;
      }
      const count = error.diagnostics.length ? ' (see Problems)' : '';
      const status = error.status ? ` [${error.status}]` : '';
      this._say(state, `${what}${status}: ${error.message}${count}`, 'error');
    } else {
      this._say(state, `${what}: ${error instanceof Error ? error.message : String(error)}`, 'error');
    }
  }

  private _renderIf(state: NotebookState): void {
    if (this._notebook && this._states.get(this._notebook) === state) {
      this._render();
    }
  }

  private _render(): void {
    const state = this._state;
    const hasNotebook = this._notebook !== null;
    this._actions.render(state, hasNotebook);
    this._message.textContent = state?.message ?? (hasNotebook ? '' : 'Open a notebook to compile it into a pipeline.');
    this._message.className = `nb2pipe-message nb2pipe-message-${state?.messageKind ?? 'info'}`;
    this._graph.render(state, this._notebook);
    this._problems.render(state, this._notebook);
    this._run.render(state, this._notebook);
    this._parametersForm.setParameters(this._notebook?.context.path ?? null, state?.graph?.parameters ?? []);
    this._yaml.textContent = state?.yaml ?? '';
    if (state?.output) {
      this._yaml.setAttribute('data-output', state.output);
    } else {
      this._yaml.removeAttribute('data-output');
    }
    this._yaml.classList.toggle('nb2pipe-hidden', !state?.yaml);
  }

  /** The graph at full size in the main area (zoom, pan, click a step to go to its cell). */
  openGraph(): void {
    this._graph.open(this._state);
  }

  private _parametersForm: ParametersForm;
  private _run: RunSection;
  private _problems: ProblemsSection;
  private _options: NB2PipePanelOptions;
  private _settings: PanelSettings = { ...DEFAULT_SETTINGS };
  private _notebook: NotebookPanel | null = null;
  private _cell: Cell | null = null;
  private _states = new WeakMap<NotebookPanel, NotebookState>();
  private _header: NotebookHeader;
  private _message: HTMLDivElement;
  private _actions: ActionBar;
  private _graph: GraphSection;
  private _tagEditor: TagEditor;
  private _settingsForm: SettingsForm;
  private _yaml: HTMLPreElement;
}
