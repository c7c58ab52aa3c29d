/** A view of the page: drawn into main, told when the node stored something, and disposed when left. */
export interface View {
  /** Something was stored on the node (a card or a peer row): show it. */
  refresh(): void;
  dispose(): void;
}

export const PROTOCOLS = ['a2a', 'mcp', 'http', 'grpc', 'websocket', 'custom'] as const;
