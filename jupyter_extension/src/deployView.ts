/**
 * After a Deploy: how to call each service (API.md's `call`): the v1 and v2 URLs, the
 * input columns, and a curl posting one real row, with a Copy button. Plain DOM, no
 * JupyterLab imports, so jest renders it in jsdom.
 */

import { clear, h } from './dom';
import { DeployCall, Deployment } from './types';

/** More input columns than this start folded (a summary line says how many). */
export const INPUTS_SHOWN = 8;

/** `base + path` without a doubled or missing slash; null without a base. */
export function joinUrl(base: string | null, path: string): string | null {
  if (!base) {
    return null;
  }
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/**
 * Put `text` on the clipboard; where the Clipboard API is missing or refused (plain HTTP,
 * no permission), select `fallback`'s text so Ctrl+C copies it. True when copied.
 */
export async function copyText(text: string, fallback: HTMLElement): Promise<boolean> {
  try {
    if (typeof navigator !== 'undefined' && navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // refused: the selection below lets the user copy it themselves
  }
  const selection = window.getSelection();
  if (selection) {
    const range = document.createRange();
    range.selectNodeContents(fallback);
    selection.removeAllRanges();
    selection.addRange(range);
  }
  return false;
}

/** The services of `deployments` that say how to call them; nothing when none does. */
export function renderDeployCalls(box: HTMLElement, deployments: readonly Deployment[]): void {
  clear(box);
  for (const d of deployments) {
    if (d.call) {
      box.appendChild(renderCall(d, d.call));
    }
  }
}

function urlRow(label: string, title: string, base: string | null, path: string): HTMLElement {
  const url = joinUrl(base, path);
  return h(
    'div',
    { className: 'nb2pipe-call-url', 'data-kind': label, title },
    h('span', { className: 'nb2pipe-call-url-label' }, `${label}: `),
    url ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url) : h('code', {}, path)
  );
}

function renderCall(d: Deployment, call: DeployCall): HTMLElement {
  const box = h(
    'div',
    { className: 'nb2pipe-call', 'id-nb2pipe': 'deploy-call', 'data-service': d.service },
    h('div', { className: 'nb2pipe-call-title', title: d.model_uri }, `${d.service} (${d.target})`)
  );
  if (!call.base_url) {
    box.appendChild(h('div', { className: 'nb2pipe-muted' }, 'No URL yet: the paths below are relative to the service.'));
  }
  box.appendChild(urlRow('v1 predict', 'POST {"instances": [...]}', call.base_url, call.predict_path));
  box.appendChild(urlRow('v2 infer', 'POST an Open Inference Protocol request', call.base_url, call.infer_path));
  box.appendChild(urlRow('v2 metadata', 'GET the model metadata', call.base_url, call.metadata_path));
  box.appendChild(renderInputs(call.inputs ?? []));
  if (call.curl) {
    const code = h('code', {}, call.curl);
    const pre = h('pre', { className: 'nb2pipe-call-curl', 'id-nb2pipe': 'deploy-curl' }, code);
    const status = h('span', { className: 'nb2pipe-muted', role: 'status' });
    const button = h('button', { type: 'button', className: 'nb2pipe-button', 'id-nb2pipe': 'copy-curl', title: 'copy the command' }, 'Copy');
    const curl = call.curl;
    button.addEventListener('click', () => {
      void copyText(curl, code).then(copied => {
        status.textContent = copied ? 'Copied.' : 'Selected: press Ctrl+C (Cmd+C) to copy.';
      });
    });
    box.appendChild(h('div', { className: 'nb2pipe-call-curl-row' }, pre, h('div', {}, button, ' ', status)));
  } else if (call.curl_note) {
    box.appendChild(h('div', { className: 'nb2pipe-muted', 'id-nb2pipe': 'deploy-curl-note' }, call.curl_note));
  }
  return box;
}

/** The input columns as a table, folded in a `details` when there are many. */
function renderInputs(inputs: readonly { name: string; type: string; datatype: string }[]): HTMLElement {
  if (!inputs.length) {
    return h('div', { className: 'nb2pipe-muted' }, 'No input schema (the model has no MLflow signature).');
  }
  const table = h(
    'table',
    { className: 'nb2pipe-call-inputs', 'id-nb2pipe': 'deploy-inputs' },
    h('tr', {}, h('th', {}, 'input'), h('th', {}, 'type'), h('th', {}, 'v2'))
  );
  for (const input of inputs) {
    table.appendChild(
      h('tr', { 'data-input': input.name }, h('td', {}, input.name), h('td', {}, input.type), h('td', {}, input.datatype))
    );
  }
  const count = `${inputs.length} input${inputs.length === 1 ? '' : 's'}`;
  return h('details', { className: 'nb2pipe-call-schema', open: inputs.length <= INPUTS_SHOWN }, h('summary', {}, count), table);
}
