import { startFakeProcessor } from "./server.js";

/**
 * The fake card processor on its own: `node --import tsx dev/processor/main.ts`. `npm run dev`
 * starts the same server itself; run this one to point another API at it (STRIPE_API_URL).
 * Env: FAKE_PROCESSOR_PORT (default 12111), WEBHOOK_URL (default the dev API's webhook route),
 * STRIPE_WEBHOOK_SECRET (required: the secret that API verifies with).
 */
const secret = process.env.STRIPE_WEBHOOK_SECRET;
if (!secret?.startsWith("whsec_")) {
  console.error("set STRIPE_WEBHOOK_SECRET=whsec_… (the secret the API verifies webhooks with)");
  process.exit(2);
}
const processor = await startFakeProcessor({
  port: Number(process.env.FAKE_PROCESSOR_PORT ?? 12111),
  webhookUrl: process.env.WEBHOOK_URL ?? "http://127.0.0.1:3000/v1/webhooks/processor",
  webhookSecret: secret,
});
console.log(`fake card processor on ${processor.url}; set STRIPE_API_URL=${processor.url} for the API`);
const stop = () => void processor.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
