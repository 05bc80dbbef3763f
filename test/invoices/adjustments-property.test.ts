/**
 * Property (model-based): queued invoice adjustments, POST /v1/admin/orgs/{id}/adjustments, and the
 * invoices that consume them (README, "Cycles and invoices"; create-adjustment.ts, close-cycle.ts).
 *
 * A generated story on a fresh org (random anchor day, an initial grant or none): queue
 * adjustments (credits and charges, small, large, exactly at / one nano-USD past what the cap
 * leaves, invalid ones: zero, alone past the limit, ten decimals, a blank / 501-character /
 * control-character / lone-surrogate description; Unicode and 500-character ones; with or without
 * corrects_invoice_id: the org's invoice, an unknown one, another org's), under fresh or reused
 * Idempotency-Keys (the same body, the same body spelled differently: "0012.500000000" for
 * "12.5", surrounding white space; a changed body), some sent concurrently (Promise.all, with or
 * without a close or an end_current_cycle_now among them), some from a process whose clock is
 * behind or ahead; usage; grants; subscribe / cancel (which close ended cycles first); the clock
 * moved (seconds, to just before / after the next boundary, days); cycles closed (POST
 * /v1/admin/cycles/close, on time or late, and end_current_cycle_now); invoices listed, their PDFs
 * and the invoice-lines CSV export read.
 *
 * The model: each idempotency key's adjustment (id, amount, description, corrects), which are
 * queued (their size: the sum of |amount|, at most $9,000,000), which invoice consumed each (the
 * first invoice closed after it was queued whose cycle ended after its created_at), the usage not
 * yet invoiced, and the org's balance (grants - usage - what closes settled from credits; once the
 * org subscribed, plan charges and included credits enter, and the settlement is checked by its
 * identities only).
 *
 * Checked after every step: no 5xx; a queue request answers 201 (new id) / 200 replayed (the same
 * id) / 409 idempotency_key_reused / 404 (corrects an invoice not the org's) / 400 (cap: param
 * amount; an invalid body) exactly as the model says (a concurrent batch: as some serial order of
 * it, the close included, does); the org's invoice_adjustments rows are the model's (ids, keys,
 * amounts, applied invoice) and their queued size is within the cap; each adjustment is a line on
 * at most one invoice, on exactly the one the model says once consumed, on none while queued;
 * each new invoice's subtotal is the sum of its lines, its usage lines the model's un-invoiced
 * usage before its end, its amount due / credits applied / status follow the settlement rule with
 * the model's balance, and the balance is the model's; PDFs render, and the CSV export has each
 * consumed adjustment once, on its invoice. At the end of the story the clock passes the next
 * boundary and cycles close, so every adjustment must be consumed exactly once; the ledger is
 * consistent.
 *
 * MODEL_RUNS / MODEL_SEED / MODEL_PATH (test/model/settings.ts) set the runs, seed and replay path.
 */
import fc from "fast-check";
import { describe, expect } from "vitest";
import { MAX_ORG_CREDITS_NANO_USD } from "../../src/billing/invoices/create-adjustment.js";
import { cycleContaining } from "../../src/billing/periods.js";
import { formatUsd, parseUsd } from "../../src/ledger/money.js";
import { modelSettings } from "../model/settings.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { csvRecords } from "../support/csv.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const SECOND = 1000;
const DAY = 86_400_000;
const NANO = 1_000_000_000n;
const CAP = 9_000_000n * NANO;
const T0 = new Date("2026-10-05T10:00:00Z");
const clock = manualClock(T0);
const { runs, seed, path } = modelSettings(100);

// ---------------------------------------------------------------- operations

/** How an amount is chosen: fixed, or relative to what the cap leaves when the step runs. */
type AmountSpec =
  | { kind: "cents"; cents: number }
  | { kind: "nano"; nano: string }
  | { kind: "room"; delta: -1 | 0 | 1; negative: boolean }
  | { kind: "fixed"; text: string };
type Queue = {
  op: "queue";
  key: number;
  /** fresh: a body of its own; same: the key's first body; respelled: it, written differently. */
  body: "fresh" | "same" | "respelled";
  amount: AmountSpec;
  /** Seconds the queuing process's clock is behind (negative: ahead; 0: none). */
  skew: number;
  /** A fresh body's description: plain, at 500 / 501 characters, Unicode, with a control character, blank. */
  desc: "plain" | "long500" | "long501" | "unicode" | "control" | "blank" | "surrogate";
  /** corrects_invoice_id of a fresh body: none, an invoice of the org, an unknown id, another org's invoice. */
  corrects: "none" | "own" | "bogus" | "foreign";
};
type Op =
  | Queue
  | { op: "batch"; queues: Queue[]; close: "none" | "close" | "endNow" }
  | { op: "usage"; cents: number }
  | { op: "grant"; cents: number }
  | { op: "subscribe"; plan: "free" | "pro" | "team" }
  | { op: "cancel" }
  | { op: "advance"; how: "seconds" | "boundary" | "days"; n: number }
  | { op: "close" }
  | { op: "endNow" }
  | { op: "list" };

const amountSpec: fc.Arbitrary<AmountSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("cents" as const), cents: fc.integer({ min: -50_000, max: 50_000 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("nano" as const),
      nano: fc.bigInt({ min: -CAP, max: CAP }).map((n) => n.toString()),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("room" as const),
      delta: fc.constantFrom<-1 | 0 | 1>(-1, 0, 1),
      negative: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("fixed" as const),
      text: fc.constantFrom(
        "9000000",
        "-9000000",
        "8999999.999999999",
        "-8999999.999999999",
        "4500000",
        "-4500000",
        "0.000000001",
        "-0.000000001",
        "9000000.000000001", // alone past the limit: 400
        "-9000000.000000001",
        "0", // zero: 400
        "-0",
        "1.0000000001", // ten decimals: 400
        "abc",
      ),
    }),
  },
);

const queueOp: fc.Arbitrary<Queue> = fc.record({
  op: fc.constant("queue" as const),
  key: fc.integer({ min: 0, max: 5 }),
  body: fc.constantFrom<Queue["body"]>("fresh", "same", "same", "respelled"),
  amount: amountSpec,
  skew: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }) },
    { weight: 1, arbitrary: fc.integer({ min: -300, max: 300 }) },
  ),
  desc: fc.oneof(
    { weight: 8, arbitrary: fc.constant("plain" as const) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Queue["desc"]>("long500", "long501", "unicode", "control", "blank", "surrogate"),
    },
  ),
  corrects: fc.oneof(
    { weight: 6, arbitrary: fc.constant("none" as const) },
    { weight: 1, arbitrary: fc.constantFrom<Queue["corrects"]>("own", "bogus", "foreign") },
  ),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: queueOp },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("batch" as const),
      queues: fc.array(
        queueOp.map((q) => ({ ...q, skew: 0 })),
        { minLength: 1, maxLength: 4 },
      ),
      close: fc.constantFrom<"none" | "close" | "endNow">("none", "none", "close", "endNow"),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("usage" as const), cents: fc.integer({ min: 1, max: 20_000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("grant" as const), cents: fc.integer({ min: 1, max: 100_000_000 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.record({
        op: fc.constant("advance" as const),
        how: fc.constant("seconds" as const),
        n: fc.integer({ min: 1, max: 600 }),
      }),
      fc.record({
        op: fc.constant("advance" as const),
        how: fc.constant("boundary" as const),
        n: fc.integer({ min: -120, max: 120 }),
      }),
      fc.record({
        op: fc.constant("advance" as const),
        how: fc.constant("days" as const),
        n: fc.integer({ min: 1, max: 40 }),
      }),
    ),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("close" as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("endNow" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("list" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("subscribe" as const),
      plan: fc.constantFrom<"free" | "pro" | "team">("free", "pro", "team"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const) }) },
);

type Story = { anchor: number; initialCents: number; ops: Op[] };
const storyArb: fc.Arbitrary<Story> = fc.record({
  anchor: fc.integer({ min: 1, max: 28 }),
  initialCents: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10_000_000 })),
  ops: fc.array(opArb, { minLength: 1, maxLength: 24 }),
});

// ---------------------------------------------------------------- model

type Adjustment = {
  id: string;
  key: string;
  amount: bigint;
  description: string;
  corrects: string | null;
  createdAt: number;
  /** The invoice the model says consumed it. */
  invoice: string | null;
};
type Usage = { at: number; cost: bigint; invoiced: boolean };

type Model = {
  byKey: Map<string, Adjustment>;
  byId: Map<string, Adjustment>;
  usage: Usage[];
  /** grants - usage - settled, nano-USD */
  balance: bigint;
  /**
   * Once the org has a subscription, plan charges and included credits enter the settlement: the
   * model then checks only its identities (due >= 0, credits applied = subtotal - due, at least 0,
   * paid iff nothing due) and takes the balance from the API.
   */
  subscribed: boolean;
  invoices: Map<string, { periodStart: string; periodEnd: string }>;
};

const abs = (n: bigint) => (n < 0n ? -n : n);
const queuedSize = (m: Model) =>
  [...m.byId.values()].filter((a) => a.invoice === null).reduce((s, a) => s + abs(a.amount), 0n);

/** The body a queue step sends, and what the API should make of it (null: a 400 for its shape). */
type Body = { amount: string; description: string; corrects_invoice_id?: string };
type Parsed = { amount: bigint; description: string; corrects: string | null };
type Request = { key: string; body: Body; parsed: Parsed | null; skew: number };

/** An invoice of an organization of an earlier story (for corrects_invoice_id: not this org's). */
let foreignInvoice: string | undefined;

function usdText(nano: bigint): string {
  return formatUsd(nano);
}

/** The same amount and description, written differently (trailing zeros, leading zeros, spaces). */
function respell(b: Body): Body {
  let nano: bigint;
  try {
    nano = parseUsd(b.amount);
  } catch {
    return { ...b, description: ` ${b.description} ` };
  }
  const neg = nano < 0n;
  const a = abs(nano);
  const text = `${neg ? "-" : ""}00${a / NANO}.${(a % NANO).toString().padStart(9, "0")}`;
  return { ...b, amount: text, description: `\u00a0 ${b.description} \u2028` };
}

function validate(body: Body): Parsed | null {
  let n: bigint;
  try {
    n = parseUsd(body.amount);
  } catch {
    return null;
  }
  if (n === 0n || abs(n) > CAP) return null;
  const d = body.description.trim();
  if (d.length < 1 || d.length > 500) return null;
  // The API's text rule: no control characters, no lone surrogates.
  if (
    [...d].some((ch) => ch.charCodeAt(0) < 0x20 || ch === "\u007f" || (ch.length === 1 && /[\ud800-\udfff]/.test(ch)))
  )
    return null;
  const c = body.corrects_invoice_id;
  if (c !== undefined && (c.length < 1 || c.length > 64)) return null;
  return { amount: n, description: d, corrects: c ?? null };
}

function buildRequest(m: Model, q: Queue, step: string, firstBodies: Map<string, Body>): Request {
  const key = `k${q.key}`;
  const first = firstBodies.get(key);
  let body: Body;
  if (q.body !== "fresh" && first) body = q.body === "same" ? { ...first } : respell(first);
  else {
    let amount: string;
    const room = CAP - queuedSize(m);
    switch (q.amount.kind) {
      case "cents": {
        const c = q.amount.cents === 0 ? 1 : q.amount.cents;
        amount = usdText(BigInt(c) * 10_000_000n);
        break;
      }
      case "nano":
        amount = usdText(BigInt(q.amount.nano) === 0n ? 1n : BigInt(q.amount.nano));
        break;
      case "room": {
        let n = room + BigInt(q.amount.delta);
        if (n <= 0n) n = 1n;
        amount = usdText(q.amount.negative ? -n : n);
        break;
      }
      case "fixed":
        amount = q.amount.text;
        break;
    }
    const base = `adjustment ${key} ${step}`;
    const description = {
      plain: base,
      long500: `  ${base.padEnd(500, "x")} `,
      long501: base.padEnd(501, "x"),
      unicode: `${base} — ünïcødé 🧾\u200b «credit» 日本`,
      control: `${base}\u0007`,
      blank: " \u00a0 ",
      surrogate: `${base} \ud800`,
    }[q.desc];
    const own = [...m.invoices.keys()];
    const corrects = {
      none: undefined,
      own: own[Number(step.replace(/\D/g, "")) % Math.max(1, own.length)] ?? "inv_missing",
      bogus: "inv_doesnotexist",
      foreign: foreignInvoice ?? "inv_nothere",
    }[q.corrects];
    body = { amount, description, ...(corrects ? { corrects_invoice_id: corrects } : {}) };
    if (!firstBodies.has(key)) firstBodies.set(key, body);
  }
  return { key, body, parsed: validate(body), skew: q.skew };
}

type Answer = { status: number; json: { id?: string; replayed?: boolean; error?: { code?: string; param?: string } } };

/** What the model expects of a queue request now; applies it to the model when `apply`. */
type Expectation =
  | { kind: "invalid" }
  | { kind: "created" }
  | { kind: "replay"; id: string }
  | { kind: "reused" }
  | { kind: "notFound" }
  | { kind: "cap" };

function expectOf(m: Model, r: Request): Expectation {
  if (!r.parsed) return { kind: "invalid" };
  const existing = m.byKey.get(r.key);
  if (existing) {
    return existing.amount === r.parsed.amount &&
      existing.description === r.parsed.description &&
      existing.corrects === r.parsed.corrects
      ? { kind: "replay", id: existing.id }
      : { kind: "reused" };
  }
  if (r.parsed.corrects !== null && !m.invoices.has(r.parsed.corrects)) return { kind: "notFound" };
  if (queuedSize(m) + abs(r.parsed.amount) > CAP) return { kind: "cap" };
  return { kind: "created" };
}

/** How often each outcome came up (MODEL_STATS=1 prints them). */
const stats = new Map<string, number>();
let counting = true;
const count = (what: string) => {
  if (counting) stats.set(what, (stats.get(what) ?? 0) + 1);
};

function matches(e: Expectation, a: Answer): boolean {
  switch (e.kind) {
    case "invalid":
      return a.status === 400 && a.json?.error?.code === "invalid_request";
    case "cap":
      return a.status === 400 && a.json?.error?.code === "invalid_request" && a.json?.error?.param === "amount";
    case "notFound":
      return a.status === 404 && a.json?.error?.code === "not_found";
    case "reused":
      return a.status === 409 && a.json?.error?.code === "idempotency_key_reused";
    case "replay":
      return a.status === 200 && a.json?.replayed === true && a.json?.id === e.id;
    case "created":
      return a.status === 201 && a.json?.replayed === false && typeof a.json?.id === "string";
  }
}

function applyAnswer(m: Model, r: Request, e: Expectation, a: Answer, at: number) {
  count(e.kind);
  if (e.kind !== "created" || !r.parsed || !a.json.id) return;
  const adj: Adjustment = {
    id: a.json.id,
    key: r.key,
    amount: r.parsed.amount,
    description: r.parsed.description,
    corrects: r.parsed.corrects,
    createdAt: at,
    invoice: null,
  };
  if (m.byId.has(adj.id)) throw new Error(`a new adjustment took an existing id ${adj.id}`);
  m.byKey.set(r.key, adj);
  m.byId.set(adj.id, adj);
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

function cloneModel(m: Model): Model {
  const byId = new Map([...m.byId].map(([k, v]) => [k, { ...v }]));
  const byKey = new Map([...m.byKey].map(([k, v]) => [k, byId.get(v.id) as Adjustment]));
  return { ...m, byId, byKey, usage: m.usage.map((u) => ({ ...u })), invoices: new Map(m.invoices) };
}

// ---------------------------------------------------------------- running a story

type Ctx = {
  app: TestApp;
  db: TestDatabase;
  orgId: string;
  orgKey: string;
  gatewayKey: string;
  anchor: number;
  log: string[];
};

function no5xx(what: string, r: { status: number; text: string }, log: string[]) {
  expect(r.status, `${what} answered ${r.status}: ${r.text}\n${log.join("\n")}`).toBeLessThan(500);
}

async function sendQueue(c: Ctx, r: Request, at: number): Promise<Answer> {
  const res = await c.app.call("POST", `/v1/admin/orgs/${c.orgId}/adjustments`, {
    key: TEST_ADMIN_KEY,
    headers: { "idempotency-key": r.key },
    body: r.body,
  });
  no5xx(`queue ${JSON.stringify(r.body)} @${new Date(at).toISOString()}`, res, c.log);
  return { status: res.status, json: res.json ?? {} };
}

async function sendClose(c: Ctx, endNow: boolean, step: string, subscribed: boolean) {
  const res = await c.app.call("POST", "/v1/admin/cycles/close", {
    key: TEST_ADMIN_KEY,
    ...(endNow ? { headers: { "idempotency-key": `end-${step}` } } : {}),
    body: endNow ? { org_id: c.orgId, end_current_cycle_now: true } : { org_id: c.orgId },
  });
  c.log.push(`  close${endNow ? " (end now)" : ""} -> ${res.status} ${res.text}`);
  no5xx("close", res, c.log);
  // An early end a subscription does not allow is refused (409, early-close-terms.test.ts).
  if (!(subscribed && endNow && res.status === 409)) expect(res.status, `${res.text}\n${c.log.join("\n")}`).toBe(200);
}

async function close(c: Ctx, m: Model, endNow: boolean, step: number) {
  await sendClose(c, endNow, String(step), m.subscribed);
  await syncInvoices(c, m);
}

type InvoiceJson = {
  id: string;
  status: string;
  period: { start: string; end: string };
  subtotal_nano_usd: string;
  credits_applied_nano_usd: string;
  amount_due_nano_usd: string;
  lines: { kind: string; description: string; amount_nano_usd: string }[];
};

/** Every invoice of the org, with lines, oldest period first. */
async function invoices(c: Ctx): Promise<InvoiceJson[]> {
  const list = await c.app.call("GET", "/v1/billing/invoices?limit=100", { key: c.orgKey });
  no5xx("list invoices", list, c.log);
  expect(list.status).toBe(200);
  const out: InvoiceJson[] = [];
  for (const i of list.json.data as { id: string }[]) {
    const one = await c.app.call("GET", `/v1/billing/invoices/${i.id}`, { key: c.orgKey });
    no5xx("get invoice", one, c.log);
    expect(one.status).toBe(200);
    out.push(one.json as InvoiceJson);
  }
  return out.sort((a, b) => a.period.start.localeCompare(b.period.start));
}

/**
 * Applies to `m` the invoices in `all` it does not know yet, oldest first, checking each against
 * it: a failure message, or null when they are as the model says.
 */
function applyInvoices(m: Model, all: InvoiceJson[]): string | null {
  const check = (what: string, actual: unknown, expected: unknown) =>
    JSON.stringify(actual) === JSON.stringify(expected)
      ? null
      : `${what}: got ${JSON.stringify(actual)}, model ${JSON.stringify(expected)}`;
  for (const inv of all) {
    if (m.invoices.has(inv.id)) continue;
    const end = Date.parse(inv.period.end);
    const start = Date.parse(inv.period.start);
    if (!(start < end)) return `${inv.id}: empty period ${inv.period.start}..${inv.period.end}`;
    // Adjustments: those queued (and not consumed) whose created_at is before the cycle's end.
    const expected = [...m.byId.values()]
      .filter((a) => a.invoice === null && a.createdAt < end)
      .sort((a, b) => a.createdAt - b.createdAt);
    const lines = inv.lines.filter((l) => l.kind === "adjustment");
    const norm = (xs: { description: string; amount: string }[]) =>
      xs.map((x) => `${x.amount} ${x.description}`).sort();
    const where = `${inv.id} (${inv.period.start}..${inv.period.end})`;
    const bad =
      check(
        `adjustment lines of ${where}`,
        norm(lines.map((l) => ({ description: l.description, amount: l.amount_nano_usd }))),
        norm(expected.map((a) => ({ description: a.description, amount: a.amount.toString() }))),
      ) ??
      // Subtotal: the sum of the lines.
      check(
        `subtotal of ${where} vs the sum of its lines`,
        inv.subtotal_nano_usd,
        inv.lines.reduce((s, l) => s + BigInt(l.amount_nano_usd), 0n).toString(),
      ) ??
      (m.subscribed
        ? null
        : check(`plan lines of ${where}`, inv.lines.filter((l) => l.kind === "subscription").length, 0));
    if (bad) return bad;
    const lastEnd = Math.max(0, ...[...m.invoices.values()].map((v) => Date.parse(v.periodEnd)));
    if (expected.some((a) => a.createdAt < lastEnd)) count("adjustment from a clock behind on a later invoice");
    count(`invoice with ${expected.length === 0 ? "no" : expected.length === 1 ? "one" : "several"} adjustments`);
    for (const a of expected) a.invoice = inv.id;
    // Usage lines: the usage not invoiced before that happened before the cycle's end.
    const usage = m.usage.filter((u) => !u.invoiced && u.at < end);
    const usageLines = inv.lines
      .filter((l) => l.kind === "usage" || l.kind === "late_usage")
      .reduce((s, l) => s + BigInt(l.amount_nano_usd), 0n);
    const badUsage = check(
      `usage lines of ${where}`,
      usageLines.toString(),
      usage.reduce((s, u) => s + u.cost, 0n).toString(),
    );
    if (badUsage) return badUsage;
    for (const u of usage) u.invoiced = true;
    if (m.subscribed) {
      const plan = inv.lines
        .filter((l) => l.kind === "subscription")
        .reduce((s, l) => s + BigInt(l.amount_nano_usd), 0n);
      const charges = plan + expected.reduce((s, a) => s + a.amount, 0n);
      const due = BigInt(inv.amount_due_nano_usd);
      const subtotal = BigInt(inv.subtotal_nano_usd);
      const badIdentity = check(
        `settlement identities of ${where}`,
        {
          dueWithinCharges: due >= 0n && due <= (charges > 0n ? charges : 0n),
          applied: inv.credits_applied_nano_usd,
          status: inv.status,
        },
        {
          dueWithinCharges: true,
          applied: (subtotal - due > 0n ? subtotal - due : 0n).toString(),
          status: due === 0n ? "paid" : "open",
        },
      );
      if (badIdentity) return badIdentity;
      m.invoices.set(inv.id, { periodStart: inv.period.start, periodEnd: inv.period.end });
      continue;
    }
    // Settlement: charges (the adjustments) from the credits as far as they go; a net credit whole.
    const charges = expected.reduce((s, a) => s + a.amount, 0n);
    const available = m.balance;
    const settled = charges > 0n ? (charges < available ? charges : available > 0n ? available : 0n) : charges;
    const due = charges - settled;
    const applied = usageLines + charges - due > 0n ? usageLines + charges - due : 0n;
    const badSettlement = check(
      `settlement of ${where} (balance before ${available})`,
      { due: inv.amount_due_nano_usd, applied: inv.credits_applied_nano_usd, status: inv.status },
      { due: due.toString(), applied: applied.toString(), status: due === 0n ? "paid" : "open" },
    );
    if (badSettlement) return badSettlement;
    m.balance -= settled;
    m.invoices.set(inv.id, { periodStart: inv.period.start, periodEnd: inv.period.end });
  }
  return null;
}

/** Applies the invoices the API issued since the model last looked, checking each against the model. */
async function syncInvoices(c: Ctx, m: Model) {
  const all = await invoices(c);
  const bad = applyInvoices(m, all);
  expect(bad, c.log.join("\n")).toBeNull();
  await checkInvoiceLines(c, m, all);
}

/** Each adjustment is a line on exactly the invoice the model says (none while queued), never two. */
async function checkInvoiceLines(c: Ctx, m: Model, all: InvoiceJson[]) {
  const story = c.log.join("\n");
  const seen = new Map<string, string[]>();
  for (const inv of all)
    for (const l of inv.lines)
      if (l.kind === "adjustment") seen.set(l.description, [...(seen.get(l.description) ?? []), inv.id]);
  for (const a of m.byId.values()) {
    expect(seen.get(a.description) ?? [], `invoices carrying ${a.id} (${a.description})\n${story}`).toEqual(
      a.invoice ? [a.invoice] : [],
    );
    seen.delete(a.description);
  }
  expect([...seen.keys()], `adjustment lines the model does not know\n${story}`).toEqual([]);
  expect(all.length, `invoices\n${story}`).toBe(m.invoices.size);
}

/**
 * The invoices' documents: every PDF renders (200), and the invoice-lines CSV export carries each
 * consumed adjustment once, on its invoice, with its description and amount.
 */
async function checkDocuments(c: Ctx, m: Model) {
  const all = await invoices(c);
  for (const inv of all) {
    const pdf = await c.app.call("GET", `/v1/billing/invoices/${inv.id}.pdf`, { key: c.orgKey });
    no5xx(`invoice pdf ${inv.id}`, pdf, c.log);
    expect(pdf.status, `pdf of ${inv.id}: ${pdf.text.slice(0, 200)}`).toBe(200);
  }
  const from = new Date(T0.getTime() - DAY);
  const to = new Date(Math.min(clock().getTime() + DAY, from.getTime() + 365 * DAY));
  const res = await c.app.call(
    "GET",
    `/v1/billing/exports/invoice-lines.csv?start=${from.toISOString()}&end=${to.toISOString()}`,
    { key: c.orgKey },
  );
  no5xx("invoice-lines.csv", res, c.log);
  expect(res.status, res.text).toBe(200);
  const { records } = csvRecords(res.text);
  const rows = records
    .filter((r) => r.kind === "adjustment")
    .map((r) => `${r.invoice_id} ${r.amount_nano_usd} ${r.description}`)
    .sort();
  const expected = [...m.byId.values()]
    .filter((a) => {
      const inv = a.invoice && m.invoices.get(a.invoice);
      return inv && Date.parse(inv.periodStart) < to.getTime() && Date.parse(inv.periodEnd) > from.getTime();
    })
    .map((a) => `${a.invoice} ${a.amount} ${a.description}`)
    .sort();
  expect(rows, `adjustment rows of invoice-lines.csv\n${c.log.join("\n")}`).toEqual(expected);
}

/** The org's rows are the model's; the queued size is within the cap; the balance is the model's. */
async function checkState(c: Ctx, m: Model) {
  const story = c.log.join("\n");
  const rows = await c.db.sql<
    { id: string; amount: string; idempotency_key: string; applied_invoice_id: string | null }[]
  >`
    select id, amount::text, idempotency_key, applied_invoice_id from invoice_adjustments where org_id = ${c.orgId} order by id`;
  expect(
    rows.map((r) => ({ id: r.id, key: r.idempotency_key, amount: r.amount, invoice: r.applied_invoice_id })),
    `invoice_adjustments rows\n${story}`,
  ).toEqual(
    [...m.byId.values()]
      .map((a) => ({ id: a.id, key: a.key, amount: a.amount.toString(), invoice: a.invoice }))
      .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)),
  );
  const size = rows.filter((r) => r.applied_invoice_id === null).reduce((s, r) => s + abs(BigInt(r.amount)), 0n);
  expect(size <= CAP, `queued size ${size} within the cap\n${story}`).toBe(true);
  const bal = await c.app.call("GET", "/v1/billing/balance", { key: c.orgKey });
  no5xx("balance", bal, c.log);
  if (m.subscribed) m.balance = BigInt(bal.json.balance_nano_usd);
  else expect(BigInt(bal.json.balance_nano_usd), `balance\n${story}`).toBe(m.balance);
}

let orgCount = 0;
let gatewayKey: string | undefined;

async function runStory(app: TestApp, db: TestDatabase, s: Story) {
  clock.set(T0);
  if (!gatewayKey) {
    const g = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "adj" },
    });
    gatewayKey = g.json.key as string;
  }
  const created = await app.call("POST", "/v1/admin/orgs", {
    key: TEST_ADMIN_KEY,
    body: { name: `adjusted ${++orgCount}`, billing_anchor_day: s.anchor },
  });
  if (created.status !== 201) throw new Error(`create org: ${created.text}`);
  const orgId = created.json.id as string;
  const k = await app.call("POST", `/v1/admin/orgs/${orgId}/keys`, { key: TEST_ADMIN_KEY, body: { scope: "org" } });
  const c: Ctx = {
    app,
    db,
    orgId,
    orgKey: k.json.key as string,
    gatewayKey,
    anchor: s.anchor,
    log: [JSON.stringify(s)],
  };
  const m: Model = {
    byKey: new Map(),
    byId: new Map(),
    usage: [],
    balance: 0n,
    subscribed: false,
    invoices: new Map(),
  };
  const firstBodies = new Map<string, Body>();
  const grant = async (cents: number, key: string) => {
    const amount = BigInt(cents) * 10_000_000n;
    const r = await app.call("POST", `/v1/admin/orgs/${orgId}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": key },
      body: { amount: formatUsd(amount), reason: "adjustments property" },
    });
    no5xx("grant", r, c.log);
    expect(r.status, r.text).toBe(201);
    m.balance += amount;
  };
  if (s.initialCents > 0) await grant(s.initialCents, "initial");

  for (const [i, op] of s.ops.entries()) {
    clock.advance(SECOND); // every step at an instant of its own
    c.log.push(`#${i} ${new Date(clock().getTime()).toISOString()} ${JSON.stringify(op)}`);
    switch (op.op) {
      case "queue": {
        const r = buildRequest(m, op, `s${i}`, firstBodies);
        const now = clock().getTime();
        const at = now - op.skew * SECOND;
        const e = expectOf(m, r);
        clock.set(new Date(at));
        let a: Answer;
        try {
          a = await sendQueue(c, r, at);
        } finally {
          clock.set(new Date(now));
        }
        c.log.push(`  ${JSON.stringify(r.body)} -> ${a.status} ${JSON.stringify(a.json)} (model: ${e.kind})`);
        expect(
          matches(e, a),
          `queue answered ${a.status} ${JSON.stringify(a.json)}, model: ${JSON.stringify(e)}\n${c.log.join("\n")}`,
        ).toBe(true);
        applyAnswer(m, r, e, a, at);
        break;
      }
      case "batch": {
        const reqs = op.queues.map((q, j) => buildRequest(m, q, `s${i}.${j}`, firstBodies));
        const at = clock().getTime();
        // A close among them (when there is one): index reqs.length.
        const closing = op.close !== "none";
        const [answers] = await Promise.all([
          Promise.all(reqs.map((r) => sendQueue(c, r, at))),
          closing ? sendClose(c, op.close === "endNow", String(i), m.subscribed) : Promise.resolve(),
        ]);
        c.log.push(
          ...reqs.map(
            (r, j) =>
              `  ${r.key} ${JSON.stringify(r.body)} -> ${answers[j]?.status} ${JSON.stringify(answers[j]?.json)}`,
          ),
        );
        const all = closing ? await invoices(c) : [];
        // Some serial order of the batch must answer exactly so (and issue the invoices it did).
        let found: Model | undefined;
        const why: string[] = [];
        counting = false;
        for (const order of permutations([...reqs.keys(), ...(closing ? [reqs.length] : [])])) {
          const trial = cloneModel(m);
          let ok = true;
          for (const j of order) {
            if (j === reqs.length) {
              const bad = applyInvoices(trial, all);
              if (bad) {
                why.push(`${order}: ${bad}`);
                ok = false;
                break;
              }
              continue;
            }
            const r = reqs[j] as Request;
            const a = answers[j] as Answer;
            const e = expectOf(trial, r);
            if (!matches(e, a)) {
              why.push(`${order}: #${j} model ${JSON.stringify(e)}`);
              ok = false;
              break;
            }
            applyAnswer(trial, r, e, a, at);
          }
          if (ok) {
            found = trial;
            break;
          }
        }
        counting = true;
        expect(
          found !== undefined,
          `no serial order of the batch answers so\n${c.log.join("\n")}\n${why.join("\n")}`,
        ).toBe(true);
        if (found) {
          Object.assign(m, found);
          // Count what the chosen order did.
          for (const [j, r] of reqs.entries()) count(`${r.parsed ? "" : "invalid "}in batch: ${answers[j]?.status}`);
        }
        count(`batch of ${reqs.length}${closing ? ` with a ${op.close}` : ""}`);
        if (closing) await checkInvoiceLines(c, m, all);
        break;
      }
      case "usage": {
        const r = await app.call("POST", "/v1/billing/usage", {
          key: c.gatewayKey,
          body: {
            events: [
              {
                idempotency_key: `u-${orgId}-${i}`,
                org_id: orgId,
                timestamp: clock().toISOString(),
                product: "api",
                quantities: { requests: op.cents * 100 },
              },
            ],
          },
        });
        no5xx("usage", r, c.log);
        expect(r.status, r.text).toBe(200);
        const res = r.json.results[0];
        c.log.push(`  -> ${res.status} ${res.cost_nano_usd ?? res.error?.code}`);
        if (res.status === "recorded") {
          const cost = BigInt(res.cost_nano_usd);
          m.usage.push({ at: clock().getTime(), cost, invoiced: false });
          m.balance -= cost;
        } else expect(res.error?.code, `usage refused\n${c.log.join("\n")}`).toBeDefined();
        break;
      }
      case "grant":
        await grant(op.cents, `g-${i}`);
        break;
      case "advance": {
        const now = clock().getTime();
        if (op.how === "seconds") clock.set(new Date(now + op.n * SECOND));
        else if (op.how === "days") clock.set(new Date(now + op.n * DAY));
        else {
          const boundary = cycleContaining(new Date(now), s.anchor).end.getTime();
          clock.set(new Date(Math.max(now, boundary + op.n * SECOND)));
        }
        break;
      }
      case "close":
        await close(c, m, false, i);
        break;
      case "endNow":
        await close(c, m, true, i);
        break;
      case "subscribe":
      case "cancel": {
        const r =
          op.op === "subscribe"
            ? await app.call("PUT", `/v1/admin/orgs/${orgId}/subscription`, {
                key: TEST_ADMIN_KEY,
                body: { plan_id: op.plan },
              })
            : await app.call("DELETE", `/v1/admin/orgs/${orgId}/subscription`, { key: TEST_ADMIN_KEY });
        c.log.push(`  -> ${r.status} ${r.text.slice(0, 200)}`);
        no5xx(op.op, r, c.log);
        if (op.op === "subscribe" && r.status < 300) m.subscribed = true;
        // A subscription change closes the org's ended cycles first.
        await syncInvoices(c, m);
        break;
      }
      case "list":
        await syncInvoices(c, m);
        await checkDocuments(c, m);
        break;
    }
    await checkState(c, m);
  }
  // Past the next boundary (and past any clock that was ahead), every cycle closed: every
  // adjustment is on exactly one invoice.
  const latest = Math.max(clock().getTime(), ...[...m.byId.values()].map((a) => a.createdAt)) + SECOND;
  clock.set(new Date(cycleContaining(new Date(latest), s.anchor).end.getTime() + 5 * SECOND));
  c.log.push(`final close ${clock().toISOString()}`);
  await close(c, m, false, s.ops.length);
  await checkState(c, m);
  await checkDocuments(c, m);
  foreignInvoice = [...m.invoices.keys()][0] ?? foreignInvoice;
  const left = [...m.byId.values()].filter((a) => a.invoice === null);
  expect(left, `adjustments never invoiced\n${c.log.join("\n")}`).toEqual([]);
  await expectLedgerConsistent(db.sql);
}

describe("queued adjustments, model-based", () => {
  it.scoped({ appOptions: { clock } });

  it(`queue / replay / reuse / cap / close: every adjustment on exactly one invoice (seed ${seed})`, {
    timeout: 240_000,
  }, async ({ app, db }) => {
    await app.metering.ready();
    await fc.assert(
      fc.asyncProperty(storyArb, (s) => runStory(app, db, s)),
      // No run starts after the limit; one already running ends first (an interrupted run would go on
      // in the background, moving the shared clock under the next test).
      { numRuns: runs, seed, path, skipAllAfterTimeLimit: 40_000 },
    );
    if (process.env.MODEL_STATS) console.log(Object.fromEntries([...stats].sort()));
  });

  /**
   * Found by this file's helper while attacking the cap's stated purpose (the generated stories
   * stay far from it): the cap bounds what one invoice sums, not what the org's credits add up
   * to. Every close of an early-ended cycle (one a minute may be ended) settled up to a $9,000,000
   * credit into the org's credits account; the 1025th took its balance past bigint: 500 "bigint
   * out of range" on every retry, and since cycles close in order no later cycle of the org closed
   * again. A credit is now refused when queued (400 naming amount) once the org's credits with
   * those queued would pass MAX_ORG_CREDITS_NANO_USD, and the org's cycles keep closing.
   */
  it("an org credited $9,000,000 at each early close: refused once its credits would pass the limit, its cycles keep closing", {
    timeout: 120_000,
  }, async ({ app }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("credited every minute");
    const endNow = async (key: string) => {
      clock.advance(61 * SECOND); // an early end needs 60 s since the previous close
      return app.call("POST", "/v1/admin/cycles/close", {
        key: TEST_ADMIN_KEY,
        headers: { "idempotency-key": key },
        body: { org_id: org.id, end_current_cycle_now: true },
      });
    };
    let credited = 0n;
    for (let round = 0; ; round++) {
      const q = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
        key: TEST_ADMIN_KEY,
        headers: { "idempotency-key": `credit-${round}` },
        body: { amount: "-9000000", description: `goodwill ${round}` },
      });
      if (credited + CAP > MAX_ORG_CREDITS_NANO_USD) {
        expect(q.status, `round ${round}: ${q.text}`).toBe(400);
        expect(q.json.error.param).toBe("amount");
        break;
      }
      expect(q.status, `round ${round}: ${q.text}`).toBe(201);
      const closed = await endNow(`end-${round}`);
      expect(closed.status, `round ${round}: ${closed.text}`).toBe(200);
      expect(closed.json.invoices_created).toBe(1);
      credited += CAP;
    }
    const bal = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(bal.json.balance_nano_usd).toBe(credited.toString());
    // A charge is still queued and invoiced: the org's closes go on.
    const charge = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "charge-after" },
      body: { amount: "1000", description: "a charge" },
    });
    expect(charge.status).toBe(201);
    const after = await endNow("end-after");
    expect(after.status).toBe(200);
    expect(after.json.invoices_created).toBe(1);
  });
});
