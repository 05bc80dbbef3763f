import { pino, type Logger } from "pino";

/** Structured JSON logs on stdout; every process names itself so interleaved dev logs stay readable. */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level, base: { process: name }, timestamp: pino.stdTimeFunctions.isoTime });
}
