/** Base of every error the SDK throws about a node: catch this one to handle them all. */
export class AgentMeshError extends Error {
  override name = 'AgentMeshError';
}

/**
 * The node answered with an error body (PROTOCOL.md section 8): `code` is the machine-readable reason,
 * e.g. `stale`, `not_found`, `deleted`, `invalid_card`, `invalid_query`.
 */
export class NodeError extends AgentMeshError {
  override name = 'NodeError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  /** On a 409 `stale`: the `updated_at` of the version the node holds, which won over the one sent. */
  get heldUpdatedAt(): string | undefined {
    const held = (this.details as { held_updated_at?: unknown } | undefined)?.held_updated_at;
    return typeof held === 'string' ? held : undefined;
  }
}

/** The node could not be reached, or did not answer within the time-outs. Nothing is known about the outcome. */
export class NodeUnreachableError extends AgentMeshError {
  override name = 'NodeUnreachableError';
}

/**
 * The node answered, but not as the protocol says: a body that is not JSON or has the wrong shape, a card that
 * fails verification, an answer over the size cap. A conforming node never causes this.
 */
export class UnexpectedAnswerError extends AgentMeshError {
  override name = 'UnexpectedAnswerError';
}
