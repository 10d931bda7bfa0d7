import { createContext, useContext } from 'react';

/** Colours by meaning; with NO_COLOR set every one is undefined and the markers (✗, ●) carry the meaning alone. */
export interface Theme {
  ok?: string;
  bad?: string;
  warn?: string;
  dim?: string;
  accent?: string;
}

export const colourTheme: Theme = { ok: 'green', bad: 'red', warn: 'yellow', dim: 'gray', accent: 'cyan' };
export const plainTheme: Theme = {};

/** The theme for this terminal: colour unless NO_COLOR is set (https://no-color.org). */
export function themeFor(env: NodeJS.ProcessEnv): Theme {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '' ? plainTheme : colourTheme;
}

export const ThemeContext = createContext<Theme>(colourTheme);
export const useTheme = (): Theme => useContext(ThemeContext);
