// Which bus partition an event belongs to: the hash of its entity key (device, else user, else event id), so every
// event of one device lands in one partition and one detector worker owns that device's state.

/** FNV-1a (32-bit) of the key's UTF-16 code units, modulo `partitions`. Stable across processes and versions. */
export function partitionOf(key: string, partitions: number): number {
  if (partitions <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

export function entityKeyOf(e: { deviceId?: string | null; userId?: string | null }, eventId: string): string {
  return e.deviceId || e.userId || eventId;
}
