/** Injected everywhere time matters (expiries, periods), so tests can move it without sleeping. */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
