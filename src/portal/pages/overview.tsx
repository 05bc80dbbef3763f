import { useState } from "preact/hooks";
import { api, type Schemas } from "../api.ts";
import { day, parseUsdInput, period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Button, Field, Loaded, Notice, Section, useAction, useLoad } from "../ui.tsx";

type Usage = Schemas["UsageReport"];

/**
 * The projection to period end: the spend so far carried on at the same average pace per hour to
 * the period's end (spent × period length ÷ time elapsed), in whole nano-USD, never a float.
 */
export function projection(usage: Usage, now = Date.now()): bigint {
  const start = new Date(usage.period.start).getTime();
  const end = new Date(usage.period.end).getTime();
  const elapsed = Math.max(1, Math.min(now, end) - start);
  return (BigInt(usage.total_nano_usd) * BigInt(end - start)) / BigInt(elapsed);
}

export function OverviewPage(_: PageProps) {
  const balance = useLoad(() => api<Schemas["Balance"]>("GET", "/v1/billing/balance"));
  const usage = useLoad(() => api<Usage>("GET", "/v1/billing/usage?period=current"));
  const autoTopup = useLoad(() => api<Schemas["AutoTopup"]>("GET", "/v1/billing/auto-topup"));
  const plan = useLoad(() => api<Schemas["OrgSubscription"]>("GET", "/v1/billing/subscription"));
  return (
    <div class="grid">
      <Section title="Balance">
        <Loaded state={balance} what="your balance">
          {(b) => (
            <>
              <dl class="figures">
                <div>
                  <dt>Balance</dt>
                  <dd data-testid="balance" data-nano={b.balance_nano_usd}>
                    {usd(b.balance_nano_usd)}
                  </dd>
                </div>
                <div>
                  <dt>Available credits</dt>
                  <dd data-nano={b.credits_nano_usd}>{usd(b.credits_nano_usd)}</dd>
                </div>
                <div>
                  <dt>Held by requests in flight</dt>
                  <dd data-nano={b.held_nano_usd}>{usd(b.held_nano_usd)}</dd>
                </div>
              </dl>
              <ThresholdForm balance={b} onSaved={balance.reload} />
            </>
          )}
        </Loaded>
      </Section>
      <Section title="This period">
        <Loaded state={usage} what="this period's spend">
          {(u) => (
            <dl class="figures">
              <div>
                <dt>Period</dt>
                <dd class="small">{period(u.period.start, u.period.end)}</dd>
              </div>
              <div>
                <dt>Spent so far</dt>
                <dd data-testid="period-spend" data-nano={u.total_nano_usd}>
                  {usd(u.total_nano_usd)}
                </dd>
              </div>
              <div>
                <dt>Projected by period end</dt>
                <dd data-testid="period-projection">{usd(projection(u))}</dd>
              </div>
            </dl>
          )}
        </Loaded>
        <p class="muted">
          The projection carries on this period's usage at its average pace so far, to the period's end. A plan's price
          is charged on top, at the period's close.
        </p>
        <p>
          <a href="/portal/costs">See costs by product and model</a>
        </p>
      </Section>
      <Section title="Plan">
        <Loaded state={plan} what="your plan">
          {(s) => <PlanFigures subscription={s} />}
        </Loaded>
      </Section>
      <Section title="Automatic top-up">
        <Loaded state={autoTopup} what="automatic top-up settings">
          {(a) => <AutoTopupForm settings={a} onSaved={autoTopup.reload} />}
        </Loaded>
      </Section>
    </div>
  );
}

function PlanFigures(props: { subscription: Schemas["OrgSubscription"] }) {
  const s = props.subscription;
  if (!s.plan)
    return (
      <p data-testid="plan-name">
        No plan: you pay only for what you use. Ask your Hanzo contact or the console to choose a plan.
      </p>
    );
  return (
    <>
      <dl class="figures">
        <div>
          <dt>Plan</dt>
          <dd data-testid="plan-name">{s.plan.name}</dd>
        </div>
        <div>
          <dt>Price per period</dt>
          <dd data-nano={s.plan.monthly_price_nano_usd}>{usd(s.plan.monthly_price_nano_usd)}</dd>
        </div>
        <div>
          <dt>Credits included each period</dt>
          <dd data-nano={s.plan.included_credits_nano_usd}>{usd(s.plan.included_credits_nano_usd)}</dd>
        </div>
      </dl>
      {s.pending_plan ? (
        <Notice>
          Changes to {s.pending_plan.name} ({usd(s.pending_plan.monthly_price_nano_usd)} a period) when this period ends
          on {day(s.period.end)}.
        </Notice>
      ) : null}
      {s.canceled_at ? (
        <Notice>
          Canceled on {day(s.canceled_at)}: this period is still charged; the plan ends on {day(s.period.end)}.
        </Notice>
      ) : null}
    </>
  );
}

function ThresholdForm(props: { balance: Schemas["Balance"]; onSaved: () => void }) {
  const [value, setValue] = useState(String(props.balance.low_balance_threshold));
  const [saved, setSaved] = useState(false);
  const save = useAction();
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        const amount = parseUsdInput(value);
        if (!amount) return save.setError("Enter the threshold in dollars, like 10 or 10.50.");
        setSaved(false);
        save.run(async () => {
          await api("PATCH", "/v1/billing/balance", { low_balance_threshold: amount });
          setSaved(true);
          props.onSaved();
        });
      }}
    >
      <Field label="Warn me when the balance falls below (USD)">
        {(id) => <input id={id} inputMode="decimal" value={value} onInput={(e) => setValue(e.currentTarget.value)} />}
      </Field>
      <Button type="submit" busy={save.busy}>
        Save threshold
      </Button>
      {save.error ? <Notice kind="error">{save.error}</Notice> : null}
      {saved ? <Notice kind="ok">Saved.</Notice> : null}
    </form>
  );
}

function AutoTopupForm(props: { settings: Schemas["AutoTopup"]; onSaved: () => void }) {
  const s = props.settings;
  const [enabled, setEnabled] = useState(s.enabled);
  const [threshold, setThreshold] = useState(s.threshold_usd);
  const [amount, setAmount] = useState(s.amount_usd);
  const [limit, setLimit] = useState(s.monthly_limit_usd);
  const [saved, setSaved] = useState(false);
  const save = useAction();
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        const body = {
          enabled,
          threshold: parseUsdInput(threshold),
          amount: parseUsdInput(amount),
          monthly_limit: parseUsdInput(limit),
        };
        if (!body.threshold || !body.amount || !body.monthly_limit)
          return save.setError("Enter each amount in dollars, like 25 or 25.50.");
        setSaved(false);
        save.run(async () => {
          await api("PUT", "/v1/billing/auto-topup", body);
          setSaved(true);
          props.onSaved();
        });
      }}
    >
      {s.disabled_reason ? (
        <Notice kind="error">
          Automatic top-up was turned off because{" "}
          {s.disabled_reason === "declined"
            ? "your card was declined three times"
            : "your card needs your confirmation"}
          . Check your payment methods, then turn it on again.
        </Notice>
      ) : null}
      <label class="check">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} /> Charge my
        default card automatically when the balance runs low
      </label>
      <div class="row">
        <Field label="When the balance falls below (USD)">
          {(id) => (
            <input id={id} inputMode="decimal" value={threshold} onInput={(e) => setThreshold(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="Add (USD)">
          {(id) => (
            <input id={id} inputMode="decimal" value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="At most per month (USD)" hint={`Charged this month: ${usd(s.charged_this_month_nano_usd)}`}>
          {(id) => <input id={id} inputMode="decimal" value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />}
        </Field>
      </div>
      <Button type="submit" busy={save.busy}>
        Save automatic top-up
      </Button>
      {save.error ? <Notice kind="error">{save.error}</Notice> : null}
      {saved ? <Notice kind="ok">Saved.</Notice> : null}
    </form>
  );
}
