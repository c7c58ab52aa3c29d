import { z } from 'zod';
import { timestampToMs } from './timestamp.js';

/** Lengths in PROTOCOL.md count Unicode code points, not UTF-16 code units. */
export function codePointLength(text: string): number {
  let surrogatePairs = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        surrogatePairs++;
        i++;
      }
    }
  }
  return text.length - surrogatePairs;
}

const text = (min: number, max: number) =>
  z
    .string()
    .refine((s) => {
      const n = codePointLength(s);
      return n >= min && n <= max;
    }, `must be ${min} to ${max} characters`)
    // The refinement is invisible to JSON Schema; these say the same there (JSON Schema counts code points too).
    .meta({ minLength: min, maxLength: max });

/** Standard base64 with padding that decodes to exactly `bytes` bytes and re-encodes to itself. */
const canonicalBase64 = (value: string, bytes: number): boolean => {
  const decoded = Buffer.from(value, 'base64');
  return decoded.length === bytes && decoded.toString('base64') === value;
};

export const PROTOCOLS = ['a2a', 'mcp', 'http', 'grpc', 'websocket', 'custom'] as const;
export type AgentProtocol = (typeof PROTOCOLS)[number];

const ENDPOINT_SCHEMES = new Set(['http:', 'https:', 'ws:', 'wss:']);

const endpoint = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .refine((value) => {
    if (codePointLength(value) > 2048) return false;
    try {
      return ENDPOINT_SCHEMES.has(new URL(value).protocol);
    } catch {
      return false;
    }
  }, 'must be an absolute http, https, ws or wss URL');

const shortStrings = z.array(text(0, 64)).max(32);

const skill = z.looseObject({
  name: text(1, 100),
  description: text(0, 500).optional(),
  tags: z.array(z.string()).optional(),
});

/** Required on every card that is not a tombstone (PROTOCOL.md section 2). */
const LIVE_CARD_MEMBERS = ['name', 'version', 'endpoint'] as const;

export const cardSchema = z
  .looseObject({
    id: z.string().regex(/^did:agent:[0-9a-f]{64}$/, 'must be did:agent: followed by 64 lowercase hex digits'),
    public_key: z
      .string()
      .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes in standard base64')
      .refine((v) => canonicalBase64(v, 32), 'must be 32 bytes in canonical standard base64'),
    updated_at: z.string().refine((v) => timestampToMs(v) !== null, 'must be an RFC 3339 UTC timestamp'),
    manifest_signature: z
      .string()
      .regex(/^ed25519:[A-Za-z0-9+/]{86}==$/, 'must be ed25519: followed by a 64-byte signature in standard base64')
      .refine((v) => canonicalBase64(v.slice(8), 64), 'must be a 64-byte signature in canonical standard base64'),
    deleted: z.boolean().optional(),
    name: text(1, 100).optional(),
    version: text(1, 20).optional(),
    endpoint: endpoint.optional(),
    protocol: z.enum(PROTOCOLS).optional(),
    description: text(0, 1000).optional(),
    skills: z
      .array(skill)
      .max(64)
      .refine((skills) => new Set(skills.map((s) => s.name)).size === skills.length, 'skill names must be unique')
      .optional(),
    tags: shortStrings.optional(),
    capabilities: shortStrings.optional(),
    models: shortStrings.optional(),
  })
  .superRefine((card, ctx) => {
    if (card.deleted === true) return;
    for (const member of LIVE_CARD_MEMBERS) {
      if (card[member] === undefined) {
        ctx.addIssue({ code: 'custom', path: [member], message: 'is required on a card that is not deleted' });
      }
    }
  })
  // The rule above as JSON Schema says it (GET /openapi.json): a card that is not a tombstone has these members.
  .meta({
    if: { not: { properties: { deleted: { const: true } }, required: ['deleted'] } },
    then: { required: [...LIVE_CARD_MEMBERS] },
  });

export type AgentCard = z.infer<typeof cardSchema>;

export function describeSchemaError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'card does not match the schema';
  const where = issue.path.length ? issue.path.join('.') : 'card';
  return `${where}: ${issue.message}`;
}
