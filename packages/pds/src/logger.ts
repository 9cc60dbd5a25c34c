/**
 * Structured logs with pino. Request logs carry method, path, status and duration only:
 * never headers, bodies or query strings, so tokens and passwords cannot leak into them.
 * The redact list is a second line of defence for fields a careless call might pass.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'portage-pds' },
    redact: {
      paths: [
        'password',
        '*.password',
        'accessJwt',
        'refreshJwt',
        '*.accessJwt',
        '*.refreshJwt',
        'authorization',
        '*.authorization',
        'headers.authorization',
        'token',
        '*.token',
        'jwtSecret',
        'adminPassword',
        'plcRotationKeyHex',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
