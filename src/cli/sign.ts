import { CardRejection, DEFAULT_MAX_CLOCK_SKEW_MS, verifyCard } from '../card/index.js';
import { signCard, type SignedCard } from '../client/index.js';
import { CommandFailure, printJson, readCardFile, readKeyFile, requireOption, UsageError, parseCommandLine } from './common.js';

export const SIGN_HELP = `agentmesh sign: sign an agent card

Usage: agentmesh sign <card.json> --key <file>

Fills in id, public_key and updated_at (now) from the key, signs the card and prints it as JSON.
<card.json> may be - for standard input. A card that a node would refuse (schema, size) is not printed.

Options:
  -k, --key <file>   the key file written by agentmesh keygen (required)
  -h, --help         show this help`;

/** Signs a card file with a key file; shared with `register`. */
export function signCardFile(cardPath: string, keyPath: string): SignedCard {
  const card = readCardFile(cardPath);
  const keys = readKeyFile(keyPath);
  try {
    return signCard(card, keys);
  } catch (error) {
    // The canonicaliser refuses values JSON cannot carry across (a lone surrogate, say).
    throw new CommandFailure(`cannot sign ${cardPath}: ${(error as Error).message}`);
  }
}

export async function sign(args: string[]): Promise<number> {
  const commandLine = parseCommandLine(args, { key: { type: 'string', short: 'k' } }, SIGN_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one card file');
  const cardPath = positionals[0]!;
  const signed = signCardFile(cardPath, requireOption(values.key, '--key'));
  try {
    verifyCard(signed, { nowMs: Date.now(), maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS });
  } catch (error) {
    if (error instanceof CardRejection) throw new CommandFailure(`a node would refuse this card: ${error.code}: ${error.message}`);
    throw error;
  }
  printJson(signed);
  return 0;
}
