import { db } from "ponder:api";
import schema from "ponder:schema";
import { Hono } from "hono";
import { graphql } from "ponder";

// Ponder requires this file. The billing API is a separate process (bin/api.ts); this only
// exposes the indexed rows read-only, for operators (GraphQL) and Ponder's /status and /ready.
const app = new Hono();
app.use("/graphql", graphql({ db, schema }));
export default app;
