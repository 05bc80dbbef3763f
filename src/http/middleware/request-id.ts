import type { MiddlewareHandler } from "hono";
import { newId } from "../../ids.js";
import type { AppEnv } from "../context.js";

// A caller's own id is kept when it is sane, so one id follows a request from the gateway to us.
const ACCEPTABLE = /^[A-Za-z0-9_.:-]{8,128}$/;

export const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const incoming = c.req.header("x-request-id");
  const id = incoming && ACCEPTABLE.test(incoming) ? incoming : newId("req");
  c.set("requestId", id);
  c.header("X-Request-Id", id);
  await next();
};
