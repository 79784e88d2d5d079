import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { NB2PipePanel } from './panel';
import { Action, DEFAULT_SETTINGS, PanelSettings } from './panelState';

const PLUGIN_ID = 'jupyterlab-nb2pipe:plugin';

/** Three steps joined into a pipeline. */
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="3" width="8" height="5" rx="1"/>
    <rect x="14" y="9.5" width="8" height="5" rx="1"/>
    <rect x="2" y="16" width="8" height="5" rx="1"/>
    <path d="M10 5.5h2.5a1.5 1.5 0 0 1 1.5 1.5v2.5h-1.5V7h-2.5zM10 18.5h2.5v-2.5H14v2.5a1.5 1.5 0 0 1-1.5 1.5H10z"/>
  </g>
</svg>`;

export const nb2pipeIcon = new LabIcon({ name: 'jupyterlab-nb2pipe:icon', svgstr: ICON_SVG });

const COMMANDS: Record<Action, { id: string; label: string }> = {
  compile: { id: 'nb2pipe:compile', label: 'nb2pipe: Compile Notebook to Pipeline' },
  run: { id: 'nb2pipe:run', label: 'nb2pipe: Run Pipeline Locally' },
  submit: { id: 'nb2pipe:submit', label: 'nb2pipe: Submit Pipeline to Kubeflow' },
  deploy: { id: 'nb2pipe:deploy', label: 'nb2pipe: Deploy Registered Models' }
};

function readSettings(settings: ISettingRegistry.ISettings): PanelSettings {
  const number = (key: string, fallback: number, minimum: number) => {
    const value = settings.get(key).composite;
    return typeof value === 'number' && Number.isFinite(value) ? Math.max(minimum, value) : fallback;
  };
  const target = settings.get('deployTarget').composite;
  return {
    pollInterval: number('pollInterval', DEFAULT_SETTINGS.pollInterval, 200),
    graphDebounce: number('graphDebounce', DEFAULT_SETTINGS.graphDebounce, 0),
    deployTarget: target === 'cluster' ? 'cluster' : 'local'
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Tag cells, see the step graph, compile, run, submit and deploy notebooks with nb2pipe.',
  autoStart: true,
  requires: [INotebookTracker, ILabShell],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    labShell: ILabShell,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new NB2PipePanel({
      activateNotebook: (notebook: NotebookPanel) => labShell.activateById(notebook.id),
      openWidget: (widget: Widget, mode?: 'split-right') => {
        if (!widget.isAttached) {
          // the graph opens beside the notebook, so a click on a step shows both
          app.shell.add(widget, 'main', mode ? { mode } : undefined);
        }
        app.shell.activateById(widget.id);
      }
    });
    panel.id = 'nb2pipe-panel';
    panel.title.icon = nb2pipeIcon;
    // the sidebar tab shows the caption as its title attribute ("nb2pipe")
    panel.title.caption = 'nb2pipe';
    labShell.add(panel, 'left', { rank: 650 });
    const follow = () => panel.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect(follow);
    tracker.activeCellChanged.connect((_, cell) => {
      if (tracker.currentWidget === panel.notebook) {
        panel.setActiveCell(cell);
      }
    });
    follow();

    for (const action of Object.keys(COMMANDS) as Action[]) {
      const { id, label } = COMMANDS[action];
      app.commands.addCommand(id, {
        label,
        caption: label,
        isEnabled: () => tracker.currentWidget !== null,
        execute: async () => {
          if (panel.notebook !== tracker.currentWidget) {
            panel.setNotebook(tracker.currentWidget);
          }
          await panel.execute(action);
        }
      });
      palette?.addItem({ command: id, category: 'nb2pipe' });
    }

    const showGraph = 'nb2pipe:show-graph';
    app.commands.addCommand(showGraph, {
      label: 'nb2pipe: Show the Pipeline Graph',
      caption: 'the step graph at full size: zoom, pan, click a step to go to its cell',
      execute: () => {
        if (tracker.currentWidget && panel.notebook !== tracker.currentWidget) {
          panel.setNotebook(tracker.currentWidget);
        }
        panel.openGraph();
      }
    });
    palette?.addItem({ command: showGraph, category: 'nb2pipe' });

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            panel.settings = readSettings(settings);
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('jupyterlab-nb2pipe: cannot load the settings', reason));
    }
  }
};

export default plugin;
