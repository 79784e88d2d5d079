/**
 * Polls a run (GET /nb2pipe/runs/RUN_ID) until it is `done`. The fetch and the timer are
 * injectable, so jest drives it with fake timers.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { Run } from './types';

export type TimerHandle = unknown;

export interface RunPollerOptions {
  /** fetch the run as it stands */
  fetchRun: (runId: string) => Promise<Run>;
  /** every state seen, the last one included */
  onUpdate: (run: Run) => void;
  /** a failed poll; polling stops */
  onError?: (error: unknown) => void;
  /** the run reached `done` */
  onDone?: (run: Run) => void;
  /** milliseconds between the end of one poll and the next (default 1000) */
  interval?: number;
  setTimer?: (callback: () => void, ms: number) => TimerHandle;
  clearTimer?: (handle: TimerHandle) => void;
}

export class RunPoller {
  constructor(options: RunPollerOptions) {
    this._options = options;
    this._setTimer = options.setTimer ?? ((cb, ms) => setTimeout(cb, ms));
    this._clearTimer = options.clearTimer ?? (handle => clearTimeout(handle as ReturnType<typeof setTimeout>));
  }

  /** the run being polled, or null */
  get runId(): string | null {
    return this._runId;
  }

  get isPolling(): boolean {
    return this._runId !== null;
  }

  /** Poll `runId` now and then every interval until done (stops polling any other run). */
  start(runId: string): void {
    this.stop();
    this._runId = runId;
    const generation = ++this._generation;
    void this._poll(runId, generation);
  }

  /** Stop polling; a poll in flight is ignored when it answers. */
  stop(): void {
    this._generation++;
    this._runId = null;
    if (this._timer !== null) {
      this._clearTimer(this._timer);
      this._timer = null;
    }
  }

  private async _poll(runId: string, generation: number): Promise<void> {
    this._timer = null;
    let run: Run;
    try {
      run = await this._options.fetchRun(runId);
    } catch (error) {
      if (generation === this._generation) {
        this.stop();
        this._options.onError?.(error);
      }
      return;
    }
    if (generation !== this._generation) {
      return;
    }
    this._options.onUpdate(run);
    if (run.done) {
      this.stop();
      this._options.onDone?.(run);
      return;
    }
    this._timer = this._setTimer(() => void this._poll(runId, generation), this._options.interval ?? 1000);
  }

  private _options: RunPollerOptions;
  private _setTimer: (callback: () => void, ms: number) => TimerHandle;
  private _clearTimer: (handle: TimerHandle) => void;
  private _timer: TimerHandle | null = null;
  private _runId: string | null = null;
  private _generation = 0;
}
