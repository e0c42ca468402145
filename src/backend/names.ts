/** Backend names accepted by `--backend` and `PROGGAN_BACKEND` (kept apart so the CLI can parse without tfjs). */
export const BACKEND_NAMES = ['auto', 'cuda', 'tensorflow', 'native', 'cpu'] as const;
/** A backend request. */
export type BackendRequest = (typeof BACKEND_NAMES)[number];
/** A backend that actually runs. */
export type BackendKind = Exclude<BackendRequest, 'auto'>;
