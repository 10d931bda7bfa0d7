/**
 * Imported before ink and React: React's development build, chosen when NODE_ENV is unset,
 * records every component render for its performance tracks, diffing the props deeply; with
 * 10,000 tasks in a list's props that took most of each update's time (measured: about two
 * thirds of the UI's busy time). A NODE_ENV set on purpose is kept.
 */
process.env.NODE_ENV ??= 'production';
export {};
