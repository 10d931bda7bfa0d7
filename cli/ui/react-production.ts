/**
 * Imported before anything loads ink or React, the JSX runtime included (a .tsx module imports
 * that first, so this cannot be imported from one). React's development build, chosen when
 * NODE_ENV is unset, records every component render for its performance tracks, diffing the
 * props deeply: with 10,000 tasks in a list's props that was two thirds of the UI's busy time
 * in a profile of Tasks view updates. A NODE_ENV set on purpose is kept.
 */
process.env.NODE_ENV ??= 'production';
export {};
