import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context.js";
import { AREAS } from "../access.js";
import { registerEventWebhooks } from "../billing/event-schemas.js";

/** The document's header; its paths and components come from the routes' own zod schemas. */
export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "Hanzo Billing",
    version: "0.1.0",
    description:
      "Credits, metering, invoices and HUSD top-ups for Hanzo Cloud. USD amounts appear twice: as JSON numbers for display " +
      "(the documented shapes) and exactly, as integer nano-USD (1e-9 USD) strings in *_nano_usd fields. " +
      "Authenticate with `Authorization: Bearer hk-…`; each operation says which key scope it needs (org, gateway or admin). " +
      'Errors are always `{"error":{"type","code","message","request_id"}}` with a stable `code`.',
  },
  // Relative: the API is on the host that serves this document, wherever it is deployed.
  servers: [{ url: "/", description: "The host serving this document" }],
  tags: [
    ...Object.entries(AREAS).map(([name, description]) => ({ name, description })),
    {
      name: "events",
      description:
        "What Hanzo sends to an organization's webhook endpoints (`webhooks`), one request per event; the same events are listed by GET /v1/billing/events.",
    },
  ],
};

/** GET /v1/openapi.json, generated at request time from every route registered on the app. */
export function registerOpenApi(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "hk-… API key",
  });
  registerEventWebhooks(app.openAPIRegistry);
  app.doc31("/v1/openapi.json", OPENAPI_DOCUMENT);
}
