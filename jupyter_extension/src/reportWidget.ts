/**
 * A run's HTML report in a main-area tab: an `<iframe sandbox>` whose src is the report
 * route. The report holds the notebook's outputs, so it is never fetched and injected into
 * the page: the server sends it sandboxed (CSP) and the frame sandboxes it again.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { reportUrl } from './runResults';

/** The report URL of `runId` under this server's base URL. */
export function serverReportUrl(runId: string, step: string | null, path: string | null): string {
  return reportUrl(ServerConnection.makeSettings().baseUrl, runId, { step, path });
}

const openTabs = new Map<string, MainAreaWidget<Widget>>();

/**
 * Show the report in a tab through `show` (the shell's main area); a report already open is
 * reloaded (a step's report is rewritten when the step runs again) and brought to the front.
 */
export function openReportTab(runId: string, step: string | null, path: string | null, show: (widget: Widget) => void): void {
  const id = reportTabId(runId, step);
  const open = openTabs.get(id);
  if (open && !open.isDisposed) {
    const frame = open.content.node.querySelector('iframe');
    if (frame) {
      frame.src = serverReportUrl(runId, step, path);
    }
    show(open);
    return;
  }
  const widget = createReportWidget(runId, step, path);
  openTabs.set(id, widget);
  widget.disposed.connect(() => openTabs.delete(id));
  show(widget);
}

function reportTabId(runId: string, step: string | null): string {
  return `nb2pipe-report-${runId}-${step ?? 'run'}`.replace(/[^A-Za-z0-9_-]/g, '-');
}

/** A tab showing the report of `runId` (its overview, or `step`'s) of notebook `path`. */
export function createReportWidget(runId: string, step: string | null, path: string | null): MainAreaWidget<Widget> {
  const content = new Widget();
  content.addClass('nb2pipe-report');
  const frame = document.createElement('iframe');
  // no allow-scripts, no allow-same-origin: the report runs nothing and reaches no cookie
  frame.setAttribute('sandbox', '');
  frame.setAttribute('referrerpolicy', 'no-referrer');
  frame.className = 'nb2pipe-report-frame';
  frame.src = serverReportUrl(runId, step, path);
  frame.title = step ? `report of ${step}, run ${runId}` : `report of run ${runId}`;
  content.node.appendChild(frame);
  const widget = new MainAreaWidget({ content });
  widget.id = reportTabId(runId, step);
  widget.title.label = step ? `${step} · ${runId}` : `Report ${runId}`;
  widget.title.caption = frame.title;
  widget.title.closable = true;
  return widget;
}
