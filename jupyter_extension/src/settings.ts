/**
 * The notebook settings nb2pipe reads from `metadata.nb2pipe` (API.md, "Notebook settings").
 * Values are strings; an emptied field is removed; other keys of `metadata.nb2pipe` (such
 * as `deploy`, `drift`, `steps_defaults`) are kept as they are.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

export const SETTING_KEYS = [
  'pipeline_name',
  'experiment_name',
  'image',
  'kfp_host',
  'mlflow_tracking_uri'
] as const;

export type SettingKey = (typeof SETTING_KEYS)[number];

export type Settings = Record<SettingKey, string>;

export const SETTING_LABELS: Record<SettingKey, string> = {
  pipeline_name: 'Pipeline name',
  experiment_name: 'Experiment',
  image: 'Image',
  kfp_host: 'Kubeflow Pipelines host',
  mlflow_tracking_uri: 'MLflow tracking URI'
};

export const SETTING_PLACEHOLDERS: Record<SettingKey, string> = {
  pipeline_name: 'default: from the notebook name',
  experiment_name: 'default: Default',
  image: 'e.g. python:3.12-slim',
  kfp_host: 'e.g. http://localhost:8080',
  mlflow_tracking_uri: 'default: .nb2pipe/ beside the notebook'
};

type JSONObject = { [key: string]: unknown };

function isObject(value: unknown): value is JSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The five settings of `metadata.nb2pipe` (missing or non-string values read as ''). */
export function readSettings(nb2pipe: unknown): Settings {
  const section = isObject(nb2pipe) ? nb2pipe : {};
  const out = {} as Settings;
  for (const key of SETTING_KEYS) {
    const value = section[key];
    out[key] = typeof value === 'string' ? value : '';
  }
  return out;
}

/**
 * `metadata.nb2pipe` with `key` set to `value` (trimmed), or removed when `value` is empty.
 * Answers a new object (the input is not changed), or `null` when nothing is left, meaning
 * the whole `nb2pipe` key should go.
 */
export function writeSetting(nb2pipe: unknown, key: SettingKey, value: string): JSONObject | null {
  const section: JSONObject = isObject(nb2pipe) ? { ...nb2pipe } : {};
  const text = value.trim();
  if (text) {
    section[key] = text;
  } else {
    delete section[key];
  }
  return Object.keys(section).length ? section : null;
}

/** Every setting at once (see writeSetting). */
export function writeSettings(nb2pipe: unknown, settings: Partial<Settings>): JSONObject | null {
  let section: JSONObject | null = isObject(nb2pipe) ? { ...nb2pipe } : {};
  for (const key of SETTING_KEYS) {
    if (key in settings) {
      section = writeSetting(section, key, settings[key] ?? '') ?? {};
    }
  }
  return Object.keys(section).length ? section : null;
}
