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

/**
 * PROTOCOL.md section 2 (1.1): text meant for people holds no control characters (C0, DEL, C1), so nothing a
 * card says can move a terminal's cursor or erase what another card printed. Descriptions may hold line feeds.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_BUT_LINE_FEED = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** Which control characters a text may hold: none, line feeds only, or any (the 1.0 rule, see legacyCardSchema). */
type Controls = 'none' | 'line-feed' | 'any';

function holdsForbiddenControl(value: string, controls: Controls): boolean {
  if (controls === 'any') return false;
  return (controls === 'none' ? CONTROL : CONTROL_BUT_LINE_FEED).test(value);
}

const CONTROL_MESSAGE: Record<Exclude<Controls, 'any'>, string> = {
  none: 'must hold no control characters',
  'line-feed': 'must hold no control characters but line feeds',
};

const text = (min: number, max: number, controls: Controls) =>
  z
    .string()
    .refine((s) => {
      const n = codePointLength(s);
      return n >= min && n <= max;
    }, `must be ${min} to ${max} characters`)
    .refine((s) => !holdsForbiddenControl(s, controls), controls === 'any' ? '' : CONTROL_MESSAGE[controls])
    // The refinements are invisible to JSON Schema; these say the length there (JSON Schema counts code points too).
    .meta({ minLength: min, maxLength: max });

/** Standard base64 with padding that decodes to exactly `bytes` bytes and re-encodes to itself. */
const canonicalBase64 = (value: string, bytes: number): boolean => {
  const decoded = Buffer.from(value, 'base64');
  return decoded.length === bytes && decoded.toString('base64') === value;
};

export const PROTOCOLS = ['a2a', 'mcp', 'http', 'grpc', 'websocket', 'custom'] as const;
export type AgentProtocol = (typeof PROTOCOLS)[number];

const ENDPOINT_SCHEMES = new Set(['http:', 'https:', 'ws:', 'wss:']);

/** Required on every card that is not a tombstone (PROTOCOL.md section 2). */
const LIVE_CARD_MEMBERS = ['name', 'version', 'endpoint'] as const;

/** The card schema under one control-character rule: `none` is PROTOCOL.md 1.1, `any` the 1.0 text rule. */
function buildCardSchema(plain: 'none' | 'any') {
  const prose = plain === 'none' ? ('line-feed' as const) : ('any' as const);
  const withoutControls = (value: string) => !holdsForbiddenControl(value, plain);
  const controlMessage = plain === 'none' ? CONTROL_MESSAGE.none : '';
  const endpoint = z
    .string()
    .max(2048, 'must be at most 2048 characters')
    // Checked on the text itself: the URL parser silently drops tabs and line feeds, so it would accept them.
    .refine(withoutControls, controlMessage)
    .refine((value) => {
      if (codePointLength(value) > 2048) return false;
      try {
        return ENDPOINT_SCHEMES.has(new URL(value).protocol);
      } catch {
        return false;
      }
    }, 'must be an absolute http, https, ws or wss URL');

  const shortStrings = z.array(text(0, 64, plain)).max(32);

  const skill = z.looseObject({
    name: text(1, 100, plain),
    description: text(0, 500, prose).optional(),
    // Section 2 bounds no skill tag; like the card's tags they are shown to people, so they follow the tags' rule.
    tags: z.array(z.string().refine(withoutControls, controlMessage)).optional(),
  });

  return z
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
      name: text(1, 100, plain).optional(),
      version: text(1, 20, plain).optional(),
      endpoint: endpoint.optional(),
      protocol: z.enum(PROTOCOLS).optional(),
      description: text(0, 1000, prose).optional(),
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
}

/** PROTOCOL.md section 2, version 1.1: what a node accepts from clients and peers. */
export const cardSchema = buildCardSchema('none');

/**
 * The same schema without the 1.1 control-character rule: cards that nodes stored under 1.0 and still serve.
 * Only for reading what a node serves (the SDK), never for accepting a card; whoever shows such a card to a
 * person escapes it (src/cli/terminal-text.ts).
 */
export const legacyCardSchema = buildCardSchema('any');

export type AgentCard = z.infer<typeof cardSchema>;

export function describeSchemaError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'card does not match the schema';
  const where = issue.path.length ? issue.path.join('.') : 'card';
  return `${where}: ${issue.message}`;
}
