// A compiled fast path for the zod schemas: ajv validators generated from them (z.toJSONSchema), so zod stays the one
// definition. ajv answers "valid" for the common case in a fraction of zod's time; anything it refuses goes to zod,
// which has the last word and the error message. Our schemas have no transforms, so a valid input is its own output.
import Ajv2020 from 'ajv/dist/2020.js';
import { z } from 'zod';

type Validate = (input: unknown) => boolean;

// unicode: false counts string length in UTF-16 units (its code-point count was ~5% of checking a batch). Never less
// than zod's count, so for our maximum lengths ajv is at most stricter, and what it refuses goes to zod; our minimums are
// 0 or 1, the same in both counts (test/fast-check.test.ts checks ajv never accepts what zod refuses). ajv calls the
// option deprecated (the warning is all it does): logger off, or every process would print it.
const ajv = new Ajv2020.default({ strict: false, allErrors: false, validateSchema: false, unicode: false, logger: false });

// Zod objects strip unknown keys; JSON Schema must then allow them (we read them for props).
function allowUnknownKeys(node: unknown): void {
  if (Array.isArray(node)) node.forEach(allowUnknownKeys);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (o.type === 'object' && o.additionalProperties === false) delete o.additionalProperties;
    for (const v of Object.values(o)) allowUnknownKeys(v);
  }
}

export function compileFastCheck(schema: z.ZodType): Validate {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  allowUnknownKeys(json);
  return ajv.compile(json) as Validate;
}
