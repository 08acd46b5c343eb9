// The per-event model scores the engine computes before rules run: rules threshold on them as `model.<name>`, and
// the anomaly explanations quote them. One reused object per engine (no allocation per event).

export interface ModelScores {
  /** Probability of this transition under the entity's model backed off to the app version's and the app's (1 = not judged). */
  markovP: number;
  /** 0..1: how improbable the transition is (0 when not judged). */
  markov: number;
  /** 0..1: new device / IP / country / user agent for a user with history (0 for a user's first events). */
  novelty: number;
  /** 0..1: how unusual this UTC hour is for the user (0 without enough history). */
  hourRarity: number;
  /** 1 when the user's country changed faster than travel allows, else 0. */
  geoVelocity: number;
  /** Minutes since the session's first event. */
  sessionMinutes: number;
  /** 0..1: scripted-client likeness of the session (uniform timing, no lifecycle events). */
  bot: number;
  /** Events of this type by this device in the current minute, in standard deviations above the app's EMA. */
  rateZ: number;
  /** Failed share of recent login attempts from this IP (decayed; 0 with fewer than 3 attempts). */
  ipFailRatio: number;
  /** Login attempts per minute from this IP (decayed). */
  ipLoginRate: number;
  /** Distinct accounts seen on this device. */
  deviceUsers: number;
}

export const SCORE_NAMES = [
  'markovP',
  'markov',
  'novelty',
  'hourRarity',
  'geoVelocity',
  'sessionMinutes',
  'bot',
  'rateZ',
  'ipFailRatio',
  'ipLoginRate',
  'deviceUsers',
] as const satisfies ReadonlyArray<keyof ModelScores>;

export function newScores(): ModelScores {
  return { markovP: 1, markov: 0, novelty: 0, hourRarity: 0, geoVelocity: 0, sessionMinutes: 0, bot: 0, rateZ: 0, ipFailRatio: 0, ipLoginRate: 0, deviceUsers: 0 };
}
