/** The sidebar's row of action buttons (compile, run locally, submit, deploy) and the deploy target. */

import { h } from './dom';
import { ACTION_LABELS, ACTION_TITLES, ACTIONS, Action, NotebookState, actionDisabled } from './panelState';

export class ActionBar {
  /** `onAction` runs when a button is clicked. */
  constructor(onAction: (action: Action) => void) {
    this.node = h('div', { className: 'nb2pipe-actions' });
    for (const action of ACTIONS) {
      const button = h(
        'button',
        { type: 'button', className: `nb2pipe-button nb2pipe-${action}`, 'id-nb2pipe': action, title: ACTION_TITLES[action] },
        ACTION_LABELS[action]
      );
      button.addEventListener('click', () => onAction(action));
      this._buttons.set(action, button);
      this.node.appendChild(button);
    }
    this._deployTarget = h(
      'select',
      { className: 'nb2pipe-deploy-target', 'id-nb2pipe': 'deploy-target', title: 'where Deploy serves the models' },
      h('option', { value: 'local' }, 'local'),
      h('option', { value: 'cluster' }, 'cluster')
    );
    this.node.appendChild(this._deployTarget);
  }

  readonly node: HTMLDivElement;

  /** Where Deploy serves the models. */
  get deployTarget(): 'local' | 'cluster' {
    return this._deployTarget.value === 'cluster' ? 'cluster' : 'local';
  }

  set deployTarget(value: 'local' | 'cluster') {
    this._deployTarget.value = value;
  }

  /** Enable the buttons that apply to `state`; mark the busy ones. */
  render(state: NotebookState | null, hasNotebook: boolean): void {
    for (const [action, button] of this._buttons) {
      const busy = state?.busy.has(action) ?? false;
      button.disabled = actionDisabled(action, state, hasNotebook);
      button.classList.toggle('nb2pipe-busy', busy);
    }
  }

  private _buttons = new Map<Action, HTMLButtonElement>();
  private _deployTarget: HTMLSelectElement;
}
