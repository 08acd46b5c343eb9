// Runs async work one call at a time per key (a read-modify-write that must not interleave with itself), without
// keeping anything for keys that are idle.
export class SerialPerKey {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier call with the same key has settled; its result or error is the caller's. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(key) ?? Promise.resolve()).then(fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, settled);
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key);
    });
    return run;
  }

  /** Resolves when every call made so far has settled. */
  async idle(): Promise<void> {
    await Promise.all(this.tails.values());
  }
}
