import { pino, type Logger } from "pino";
import { redactUrl } from "../chain/redact.js";

/**
 * Structured JSON logs on stdout; every process names itself so interleaved dev logs stay readable.
 * Every line passes through redactUrl on its way out: an RPC URL carries its provider key, and
 * viem puts the URL into its errors, whichever log site they reach.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    name,
    level,
    base: { process: name },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: { streamWrite: redactUrl },
  });
}
