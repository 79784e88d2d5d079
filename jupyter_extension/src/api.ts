import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { Diagnostic } from './types';

/** An error answer of the server: its status and its `{message, diagnostics}` body. */
export class NB2PipeError extends Error {
  constructor(message: string, status: number, diagnostics: Diagnostic[] = [], body: unknown = null) {
    super(message);
    this.name = 'NB2PipeError';
    this.status = status;
    this.diagnostics = diagnostics;
    this.body = body;
  }

  /** the HTTP status, or 0 when the server could not be reached */
  readonly status: number;
  readonly diagnostics: Diagnostic[];
  readonly body: unknown;
}

/**
 * Call the server extension's route `endpoint` (under `base_url/nb2pipe/`), as the
 * official extension template's `requestAPI` does, answering the JSON body.
 */
export async function requestAPI<T>(
  endpoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'nb2pipe', endpoint);
  if (init.body !== undefined && !(init.headers as Record<string, string> | undefined)?.['Content-Type']) {
    init = { ...init, headers: { ...(init.headers as Record<string, string> | undefined), 'Content-Type': 'application/json' } };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new NB2PipeError(`cannot reach the server: ${(error as Error).message ?? error}`, 0);
  }
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const body = (typeof data === 'object' && data !== null ? data : {}) as {
      message?: unknown;
      diagnostics?: unknown;
    };
    const message =
      typeof body.message === 'string' && body.message
        ? body.message
        : typeof data === 'string' && data && !data.trim().startsWith('<')
          ? data
          : `${response.status} ${response.statusText}`;
    const diagnostics = Array.isArray(body.diagnostics) ? (body.diagnostics as Diagnostic[]) : [];
    throw new NB2PipeError(message, response.status, diagnostics, data);
  }
  return data as T;
}

/** POST `body` as JSON to `endpoint`. */
export function post<T>(endpoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
}
