/**
 * Every error the protocol code throws on bad input is an AtprotoError with a stable `code`
 * (machine-readable, used by the server to pick an XRPC error name) and a message that
 * names what was wrong. Modules subclass it so callers can `instanceof` a precise kind.
 */
export class AtprotoError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
