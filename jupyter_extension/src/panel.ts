/**
 * The nb2pipe sidebar: the active notebook's settings, the active cell's tags, the four
 * actions (compile, run locally, submit to Kubeflow, deploy), the step graph, diagnostics,
 * the compiled YAML and the run's status. Plain DOM in a Lumino widget.
 */

import { Notebook, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { NB2PipeError, post, requestAPI } from './api';
import { clearBadges, NOTHING_TO_COMPILE, nothingToCompile, renderBadges } from './cellBadges';
import { ICellTagsHost, TagEditor } from './cellEditor';
import { renderSvg } from './dag';
import { renderDeployCalls } from './deployView';
import { GraphWindow } from './graphWidget';
import { summarize } from './diagnostics';
import { append, h } from './dom';
import { RunPoller } from './runs';
import { describeErrors, ParametersForm, parametersBody } from './parametersForm';
import { openReportTab, serverReportUrl } from './reportWidget';
import { IRunActions, markFailedCell, renderRunStatus, RunHistoryView } from './runResults';
import { SettingsForm } from './settingsForm';
import {
  ACTION_LABELS,
  ACTION_TITLES,
  ACTIONS,
  Action,
  DEFAULT_SETTINGS,
  NotebookState,
  PanelSettings,
  actionDisabled,
  runningRunId
} from './panelState';
import { NotebookHeader } from './notebookHeader';
import { markCells, renderDiagnosticList, renderRunBox } from './views';
import { CompileResult, DeployResult, Diagnostic, Graph, Run, RunFailure, RunSummary, SubmitResult } from './types';

/** A notebook cell widget (without depending on @jupyterlab/cells directly). */
type Cell = Notebook['widgets'][number];

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
    const buttons = h('div', { className: 'nb2pipe-actions' });
    for (const action of ACTIONS) {
      const button = h(
        'button',
        { type: 'button', className: `nb2pipe-button nb2pipe-${action}`, 'id-nb2pipe': action, title: ACTION_TITLES[action] },
        ACTION_LABELS[action]
      );
      button.addEventListener('click', () => void this.execute(action));
      this._buttons.set(action, button);
      buttons.appendChild(button);
    }
    this._deployTarget = h(
      'select',
      { className: 'nb2pipe-deploy-target', 'id-nb2pipe': 'deploy-target', title: 'where Deploy serves the models' },
      h('option', { value: 'local' }, 'local'),
      h('option', { value: 'cluster' }, 'cluster')
    );
    buttons.appendChild(this._deployTarget);

    this._dag = h('div', { className: 'nb2pipe-dag-box' });
    this._dagNote = h('div', { className: 'nb2pipe-note' });
    this._dag.addEventListener('click', event => this._onDagClick(event));
    this._graphWindow = new GraphWindow({ onJump: cell => this.jumpToCell(cell), show: w => this._options.openWidget?.(w, 'split-right') });
    const enlarge = h(
      'button',
      { type: 'button', className: 'nb2pipe-button nb2pipe-enlarge', 'id-nb2pipe': 'enlarge-graph', title: 'the graph at full size: zoom, pan, click a step' },
      'Enlarge'
    );
    enlarge.addEventListener('click', () => this.openGraph());
    enlarge.hidden = !options.openWidget;
    this._diagnostics = h('ul', { className: 'nb2pipe-diagnostics', 'id-nb2pipe': 'diagnostics' });
    this._tagEditor = new TagEditor({
      onMessage: (text, kind) => this._say(this._state, text, kind),
      onApplied: () => this._scheduleGraph()
    });
    this._settingsForm = new SettingsForm();
    this._runBox = h('div', { className: 'nb2pipe-run' });
    this._deployBox = h('div', { className: 'nb2pipe-deploy-calls', 'id-nb2pipe': 'deploy-calls' });
    this._parametersForm = new ParametersForm();
    this._runHistory = new RunHistoryView({
      load: path => requestAPI<{ runs: RunSummary[] }>(`runs?path=${encodeURIComponent(path)}`).then(r => r.runs ?? []),
      onOpenReport: (runId, step) => this.openReport(runId, step)
    });
    this._yaml = h('pre', { className: 'nb2pipe-yaml', 'id-nb2pipe': 'yaml' });

    const section = (title: string, ...children: (Node | null)[]) =>
      h('section', { className: 'nb2pipe-section' }, h('h3', { className: 'nb2pipe-section-title' }, title), ...children);
    append(
      this.node,
      this._header.node,
      buttons,
      this._message,
      section('Graph', enlarge, this._dagNote, this._dag),
      section('Problems', this._diagnostics),
      section('Parameters', this._parametersForm.node),
      section('Run', this._runBox, this._deployBox, this._runHistory.node),
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
      this._deployTarget.value = value.deployTarget;
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
        this._settingsForm.setHost({
          get: () => panel.model?.getMetadata('nb2pipe'),
          set: value => {
            if (!panel.model) {
              return;
            }
            if (value === null) {
              panel.model.deleteMetadata('nb2pipe');
            } else {
              panel.model.setMetadata('nb2pipe', value);
            }
          }
        });
        this._refreshGraph(this._stateOf(panel));
      });
    } else {
      this._settingsForm.setHost(null);
    }
    this.setActiveCell(panel ? panel.content.activeCell : null);
    void this._runHistory.setPath(panel ? panel.context.path : null);
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
    const notebook = this._notebook;
    const host: ICellTagsHost = {
      key: cell.model.id,
      cellType: cell.model.type,
      get label() {
        const index = notebook ? notebook.content.widgets.indexOf(cell) : -1;
        return `Cell ${index + 1} (${cell.model.type})`;
      },
      getTags: () => {
        const tags = cell.model.getMetadata('tags');
        return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
      },
      setTags: tags => {
        if (tags.length) {
          cell.model.setMetadata('tags', tags);
        } else {
          cell.model.deleteMetadata('tags');
        }
      }
    };
    this._tagEditor.setCell(host);
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
      switch (action) {
        case 'compile':
          await this._compile(state, path);
          break;
        case 'run':
          await this._run(state, path, parameters);
          break;
        case 'submit':
          await this._submit(state, path, parameters);
          break;
        case 'deploy':
          await this._deploy(state, path);
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

  // --- the actions ----------------------------------------------------------------------

  private async _compile(state: NotebookState, path: string): Promise<void> {
    const result = await post<CompileResult>('compile', { path });
    state.yaml = result.yaml;
    state.output = result.output;
    if (result.graph) {
      // the compile route's graph may lack the cell roles: keep the ones the graph route gave
      state.graph = result.graph.cells ? result.graph : { ...result.graph, cells: state.graph?.cells };
      state.graphError = '';
    }
    state.diagnostics = result.diagnostics ?? [];
    const warnings = state.diagnostics.length ? ` (${summarize(state.diagnostics)})` : '';
    if (this._notebook && nothingToCompile(state.graph, this._cellSources(this._notebook))) {
      this._say(state, `${NOTHING_TO_COMPILE} (${result.output} runs an empty step)`, 'error');
      return;
    }
    this._say(state, `Compiled to ${result.output}${warnings}.`, 'info');
  }

  private async _run(state: NotebookState, path: string, parameters: Record<string, string>): Promise<void> {
    const run = await post<Run>('runs', { path, ...parametersBody(parameters) });
    state.run = run;
    state.runId = run.run_id;
    state.diagnostics = [];
    this._say(state, `Run ${run.run_id} started locally.`, 'info');
    this._poll(state, run.run_id);
  }

  private async _submit(state: NotebookState, path: string, parameters: Record<string, string>): Promise<void> {
    const result = await post<SubmitResult>('submit', { path, ...parametersBody(parameters) });
    state.runUrl = result.run_url;
    state.runId = result.run_id;
    state.diagnostics = [];
    this._say(state, `Submitted run ${result.run_id} to Kubeflow Pipelines.`, 'info');
  }

  private async _deploy(state: NotebookState, path: string): Promise<void> {
    const target = this._deployTarget.value === 'cluster' ? 'cluster' : 'local';
    const result = await post<DeployResult>('deploy', { path, target });
    state.deployments = result.deployments ?? [];
    state.diagnostics = [];
    const names = state.deployments.map(d => d.service).join(', ');
    this._say(state, `Deployed ${names || 'nothing'} (${target}).`, 'info');
  }

  private _poll(state: NotebookState, runId: string): void {
    state.poller?.stop();
    state.poller = new RunPoller({
      interval: this._settings.pollInterval,
      fetchRun: id => requestAPI<Run>(`runs/${encodeURIComponent(id)}`),
      onUpdate: run => {
        state.run = run;
        this._renderIf(state);
      },
      onDone: run => {
        const failures = (run.failures ?? []).map(f => `${f.step}: ${f.message}`).join('; ');
        this._say(state, `Run ${run.run_id} ${run.status}${failures ? `: ${failures}` : ''}.`, run.status === 'succeeded' ? 'info' : 'error');
        this._renderIf(state);
        if (this._state === state) {
          void this._runHistory.refresh();
        }
      },
      onError: error => {
        this._fail(state, `Following run ${runId} failed`, error);
        this._renderIf(state);
      }
    });
    state.poller.start(runId);
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
    if (!panel || !panel.model) {
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
        this._renderIf(state);
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
        this._renderIf(state);
      }
    );
  }

  private _onDagClick(event: MouseEvent): void {
    const target = event.target as Element | null;
    const node = target?.closest?.('[data-node]');
    const graph = this._notebook ? this._stateOf(this._notebook).graph : null;
    if (!node || !graph) {
      return;
    }
    const id = node.getAttribute('data-node');
    const found = graph.nodes.find(n => n.id === id);
    if (found && found.cells?.length) {
      this.jumpToCell(found.cells[0]);
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
    for (const [action, button] of this._buttons) {
      const busy = state?.busy.has(action) ?? false;
      button.disabled = actionDisabled(action, state, hasNotebook);
      button.classList.toggle('nb2pipe-busy', busy);
    }
    this._message.textContent = state?.message ?? (hasNotebook ? '' : 'Open a notebook to compile it into a pipeline.');
    this._message.className = `nb2pipe-message nb2pipe-message-${state?.messageKind ?? 'info'}`;
    this._renderGraph(state);
    this._renderDiagnostics(state);
    this._renderRun(state);
    this._yaml.textContent = state?.yaml ?? '';
    if (state?.output) {
      this._yaml.setAttribute('data-output', state.output);
    } else {
      this._yaml.removeAttribute('data-output');
    }
    this._yaml.classList.toggle('nb2pipe-hidden', !state?.yaml);
  }

  private _renderGraph(state: NotebookState | null): void {
    const graph = state?.graph ?? null;
    this._dagNote.textContent = state?.graphError ?? '';
    this._dag.classList.toggle('nb2pipe-stale', !!state?.graphError);
    if (!graph) {
      this._dag.innerHTML = '';
      this._dagNote.textContent = state?.graphError || (state ? 'Building the graph…' : '');
      this._renderBadges(state);
      this._graphWindow.update(null, this._dagNote.textContent);
      return;
    }
    const svg = renderSvg(graph, { 'data-nb2pipe-id': 'dag', role: 'img', 'aria-label': `steps of ${graph.pipeline}` });
    if (svg !== this._lastSvg || !this._dag.firstChild) {
      this._dag.innerHTML = svg;
      this._lastSvg = svg;
    }
    this._renderBadges(state);
    this._graphWindow.update(graph, state?.graphError ?? '');
  }

  /** Each code cell's step or role on the cell itself (cellBadges.ts); the note when no code would run. */
  private _renderBadges(state: NotebookState | null): void {
    const panel = this._notebook;
    if (!panel) {
      return;
    }
    const graph = state?.graph ?? null;
    renderBadges(
      panel.content.widgets.map(c => c.node),
      graph,
      !!state?.graphError
    );
    if (graph && !state?.graphError && nothingToCompile(graph, this._cellSources(panel))) {
      this._dagNote.textContent = NOTHING_TO_COMPILE;
    }
  }

  private _cellSources(panel: NotebookPanel): string[] {
    return panel.content.widgets.map(c => c.model.sharedModel.getSource());
  }

  /** The graph at full size in the main area (zoom, pan, click a step to go to its cell). */
  openGraph(): void {
    const state = this._state;
    this._graphWindow.open(state?.graph ?? null, state?.graphError || (state ? '' : 'Open a notebook first.'));
  }

  private _renderDiagnostics(state: NotebookState | null): void {
    const diagnostics = state?.diagnostics ?? [];
    renderDiagnosticList(this._diagnostics, diagnostics, cell => this.jumpToCell(cell));
    this._markCells(diagnostics);
  }

  /** Mark the offending cells in the notebook: a class and a small message under the cell. */
  private _markCells(diagnostics: Diagnostic[]): void {
    const panel = this._notebook;
    if (!panel || (this._marked.panel === panel && this._marked.diagnostics === diagnostics)) {
      return;
    }
    this._marked = { panel, diagnostics };
    markCells(
      panel.content.widgets.map(cell => cell.node),
      diagnostics
    );
  }

  private _renderRun(state: NotebookState | null): void {
    renderDeployCalls(this._deployBox, state?.deployments ?? []);
    const run = state?.run ?? null;
    // the Kubeflow link and the endpoints (views.ts); the run itself is drawn by runResults.ts
    const endpoints = (run?.endpoints ?? []).map(e => ({ ...e, target: 'from the run', model_uri: run?.run_id ?? '' }));
    renderRunBox(this._runBox, {
      run: null,
      runUrl: state?.runUrl ?? null,
      runId: state?.runId ?? null,
      deployments: [...(state?.deployments ?? []), ...endpoints]
    });
    if (run) {
      this._runBox.querySelector(':scope > .nb2pipe-empty')?.remove();
      this._runBox.insertBefore(renderRunStatus(run, this._runActions), this._runBox.firstChild);
    }
    this._parametersForm.setParameters(this._notebook?.context.path ?? null, state?.graph?.parameters ?? []);
    const panel = this._notebook;
    const failure = run?.failure ?? null;
    if (panel && (this._markedFailure.panel !== panel || this._markedFailure.failure !== failure)) {
      this._markedFailure = { panel, failure };
      markFailedCell(
        panel.content.widgets.map(cell => cell.node),
        failure
      );
    }
  }

  private _runActions: IRunActions = {
    onJumpToCell: cell => this.jumpToCell(cell),
    onOpenReport: (runId, step) => this.openReport(runId, step)
  };
  private _markedFailure: { panel: NotebookPanel | null; failure: RunFailure | null } = { panel: null, failure: null };
  private _parametersForm: ParametersForm;
  private _runHistory: RunHistoryView;

  private _options: NB2PipePanelOptions;
  private _settings: PanelSettings = { ...DEFAULT_SETTINGS };
  private _notebook: NotebookPanel | null = null;
  private _cell: Cell | null = null;
  private _states = new WeakMap<NotebookPanel, NotebookState>();
  private _header: NotebookHeader;
  private _message: HTMLDivElement;
  private _buttons = new Map<Action, HTMLButtonElement>();
  private _deployTarget: HTMLSelectElement;
  private _dag: HTMLDivElement;
  private _dagNote: HTMLDivElement;
  private _lastSvg = '';
  private _marked: { panel: NotebookPanel | null; diagnostics: Diagnostic[] | null } = { panel: null, diagnostics: null };
  private _diagnostics: HTMLUListElement;
  private _tagEditor: TagEditor;
  private _settingsForm: SettingsForm;
  private _runBox: HTMLDivElement;
  private _deployBox: HTMLDivElement;
  private _graphWindow: GraphWindow;
  private _yaml: HTMLPreElement;
}
