// A compiled fast path for the zod schemas: ajv validators generated from them (z.toJSONSchema), so zod stays the one
// definition. ajv answers "valid" for the common case in a fraction of zod's time; anything it refuses goes to zod,
// which has the last word and the error message. Our schemas have no transforms, so a valid input is its own output.
import Ajv2020 from 'ajv/dist/2020.js';
import { z } from 'zod';

type Validate = (input: unknown) => boolean;

// ajv counts string length in code points, as zod 4's .min()/.max() do (test/fast-check.test.ts checks the two agree).
const ajv = new Ajv2020.default({ strict: false, allErrors: false, validateSchema: false });

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
