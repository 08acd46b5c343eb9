// Transition models over an app's symbols (screen views, taps, business events): counts of 1st- and 2nd-order
// transitions, and the backed-off probability of an observed transition:
//   entity (1st order) → app version (2nd order → 1st order) → whole app (1st order) → uniform,
// each level smoothed towards the one below it (Dirichlet prior), so a thin history falls back to the wider model.
// Symbols are small integers (interned per app); transition keys are numbers, never concatenated strings.

/** Most symbols one app may have (keys are packed as numbers in base SYMBOLS). */
export const SYMBOLS = 4096;
/** Symbol 0: the start of a session. */
export const START = 0;

export interface Transitions {
  /** (prev, next) → count */
  c1: Map<number, number>;
  /** prev → count of transitions out of it */
  ctx1: Map<number, number>;
  /** (prev2, prev, next) → count */
  c2: Map<number, number>;
  /** (prev2, prev) → count */
  ctx2: Map<number, number>;
  /** next → times seen */
  seen: Map<number, number>;
  total: number;
}

export const newTransitions = (): Transitions => ({ c1: new Map(), ctx1: new Map(), c2: new Map(), ctx2: new Map(), seen: new Map(), total: 0 });

/** What a device has done itself: 1st-order counts only (bounded by its own vocabulary). */
export interface EntityTransitions {
  c1: Map<number, number>;
  ctx1: Map<number, number>;
}

const inc = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);

export function learnTransition(t: Transitions, p2: number, p1: number, x: number): void {
  inc(t.c1, p1 * SYMBOLS + x);
  inc(t.ctx1, p1);
  if (p2 >= 0) {
    const ctx = p2 * SYMBOLS + p1;
    inc(t.c2, ctx * SYMBOLS + x);
    inc(t.ctx2, ctx);
  }
  inc(t.seen, x);
  t.total++;
}

export function learnEntityTransition(e: EntityTransitions, p1: number, x: number): void {
  inc(e.c1, p1 * SYMBOLS + x);
  inc(e.ctx1, p1);
}

export interface MarkovParams {
  /** Prior weight of the uniform distribution in the app model. */
  appPrior: number;
  /** Prior weight of the app model in a version's 1st-order model. */
  versionPrior: number;
  /** Prior weight of the version's 1st-order model in its 2nd-order model. */
  secondPrior: number;
  /** Prior weight of the version model in an entity's own model. */
  entityPrior: number;
  /** Transitions out of a context a version's model must have seen before it may find p lower than the app-wide model. */
  versionMature: number;
  /** Transitions out of a context the app model must have seen before it judges anything from it. */
  minContext: number;
  /** A symbol seen fewer times than this in the app (a screen a new release just added) is not judged. */
  youngSymbol: number;
}

export interface MarkovResult {
  judged: boolean;
  /** The probability judged: max(entity level, version level). */
  p: number;
  /** Entity level, backed off to the version. */
  pEntity: number;
  pApp: number;
  pVersion1: number;
  pVersion2: number;
  ctxApp: number;
  ctxVersion: number;
  ctxEntity: number;
  countEntity: number;
}

export const newMarkovResult = (): MarkovResult => ({ judged: false, p: 1, pEntity: 1, pApp: 1, pVersion1: 1, pVersion2: 1, ctxApp: 0, ctxVersion: 0, ctxEntity: 0, countEntity: 0 });

/**
 * Probability of `x` after (`p2`, `p1`) for an entity of an app version. Fills `out` (no allocation).
 * `vocab` is the number of symbols the app knows (the uniform floor is 1/vocab).
 */
export function scoreTransition(
  app: Transitions,
  version: Transitions,
  entity: EntityTransitions | null,
  p2: number,
  p1: number,
  x: number,
  vocab: number,
  prm: MarkovParams,
  out: MarkovResult,
): void {
  const k1 = p1 * SYMBOLS + x;
  const ctxApp = app.ctx1.get(p1) ?? 0;
  const pApp = ((app.c1.get(k1) ?? 0) + prm.appPrior / Math.max(vocab, 2)) / (ctxApp + prm.appPrior);
  const ctxV = version.ctx1.get(p1) ?? 0;
  const pV1 = ((version.c1.get(k1) ?? 0) + prm.versionPrior * pApp) / (ctxV + prm.versionPrior);
  let pV2 = pV1;
  if (p2 >= 0) {
    const ctx = p2 * SYMBOLS + p1;
    pV2 = ((version.c2.get(ctx * SYMBOLS + x) ?? 0) + prm.secondPrior * pV1) / ((version.ctx2.get(ctx) ?? 0) + prm.secondPrior);
  }
  let pE = pV2;
  let ctxE = 0;
  let cE = 0;
  if (entity) {
    ctxE = entity.ctx1.get(p1) ?? 0;
    cE = entity.c1.get(k1) ?? 0;
    pE = (cE + prm.entityPrior * pV2) / (ctxE + prm.entityPrior);
  }
  // Improbable means improbable for this entity *and* for its app version: an entity's own habits can vouch for a
  // rare transition, but a transition the population makes is not an anomaly just because this device never did.
  // And a version's model overrules the app-wide one only once it has seen enough from this context: before that, a
  // transition the app makes every day is not "impossible" because a new version's users have not made it yet.
  out.p = ctxV >= prm.versionMature ? Math.max(pE, pV2) : Math.max(pE, pV2, pApp);
  out.pEntity = pE;
  out.pApp = pApp;
  out.pVersion1 = pV1;
  out.pVersion2 = pV2;
  out.ctxApp = ctxApp;
  out.ctxVersion = ctxV;
  out.ctxEntity = ctxE;
  out.countEntity = cE;
  // Judge only from contexts the app knows well, and only symbols that are established (a new release's new screen
  // is young until enough users have seen it; by then its version's model knows it).
  const established = (s: number) => s === START || (app.seen.get(s) ?? 0) >= prm.youngSymbol;
  out.judged = ctxApp >= prm.minContext && established(p1) && established(x);
}
