import { useRef, useState } from "preact/hooks";
import { api, ApiError, newIdempotencyKey, type Schemas } from "../api.ts";
import { day, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Button, Field, Loaded, Notice, Section, Table, useLoad } from "../ui.tsx";

type Grant = Schemas["CreditGrantView"];
type Referrals = Schemas["Referrals"];
type Redemption = Schemas["PromoRedemption"];

const SOURCE: Record<Grant["source"], string> = {
  operator: "From Hanzo",
  plan: "Included in your plan",
  promo: "Promo code",
  referral: "Referral reward",
  refund_credit: "Credit note",
};

/** What a refused promo code means, in words a customer can act on (the API's codes: see redeemPromoCode). */
function promoMessage(err: unknown): string {
  const code = err instanceof ApiError ? err.code : "";
  switch (code) {
    case "unknown_promo_code":
      return "We don't know that code. Check its spelling and try again.";
    case "promo_code_inactive":
      return "That code is no longer active.";
    case "promo_code_expired":
      return "That code has expired.";
    case "promo_code_exhausted":
      return "That code has been used as many times as it can be.";
    case "promo_code_first_top_up_only":
      return "That code is only for accounts that haven't topped up yet.";
    case "promo_code_already_redeemed":
      return "You've already redeemed that code.";
    case "invalid_request":
      return "A promo code is 3 to 32 letters, digits, dashes or underscores.";
    default:
      return err instanceof Error ? err.message : "The code could not be redeemed. Try again.";
  }
}

/** Credits: the grants in the balance, redeeming a promo code, and the referral link with what it earned. */
export function CreditsPage(_: PageProps) {
  const grants = useLoad(() => api<Schemas["CreditGrantPage"]>("GET", "/v1/billing/grants?limit=100"));
  return (
    <>
      <div class="grid">
        <PromoForm onRedeemed={grants.reload} />
        <Referral />
      </div>
      <Section title="Credit grants">
        <Loaded state={grants} what="your credit grants">
          {(page) => (
            <Table
              caption="Credit grants, newest first"
              head={["Granted", "From", "Amount", "Left", "Expires"]}
              empty={!page.data.length}
            >
              {page.data.map((g) => (
                <tr key={g.id} data-testid="grant-row" data-source={g.source}>
                  <td>{day(g.created_at)}</td>
                  <td>
                    {SOURCE[g.source]}
                    <br />
                    <small>{g.reason}</small>
                  </td>
                  <td class="num" data-nano={g.amount_nano_usd}>
                    {usd(g.amount_nano_usd)}
                  </td>
                  <td class="num">{usd(g.remaining_nano_usd)}</td>
                  <td>
                    {g.expired
                      ? `Expired ${day(g.expires_at)}`
                      : g.expires_at
                        ? `${day(g.expires_at)}${g.spend_order ? ` (used ${ordinal(g.spend_order)})` : ""}`
                        : "Never"}
                  </td>
                </tr>
              ))}
            </Table>
          )}
        </Loaded>
        <p class="muted">Credits that expire soonest are used first.</p>
      </Section>
    </>
  );
}

const ordinal = (n: number) => (n === 1 ? "first" : n === 2 ? "second" : n === 3 ? "third" : `${n}th`);

function PromoForm(props: { onRedeemed: () => void }) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [done, setDone] = useState<Redemption | undefined>();
  // One intent per code as typed: a retry after a lost answer is the same redemption, answered
  // with it (not "already redeemed"); a new key once it succeeded or the code changed.
  const intent = useRef({ code: "", key: "" });
  return (
    <Section title="Redeem a promo code">
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const value = code.trim();
          if (!value) return setError("Enter the promo code you were given.");
          setBusy(true);
          setError(undefined);
          setDone(undefined);
          // Codes are the same in any case (the API keeps them in upper case): one key per code.
          const same = value.toUpperCase();
          if (intent.current.code !== same) intent.current = { code: same, key: newIdempotencyKey() };
          api<Redemption>(
            "POST",
            "/v1/billing/promo-codes/redeem",
            { code: value },
            { idempotencyKey: intent.current.key },
          )
            .then(
              (r) => {
                intent.current = { code: "", key: "" };
                setDone(r);
                setCode("");
                props.onRedeemed();
              },
              (err: unknown) => setError(promoMessage(err)),
            )
            .finally(() => setBusy(false));
        }}
      >
        <Field label="Promo code">
          {(id) => (
            <input
              id={id}
              value={code}
              maxLength={32}
              autocomplete="off"
              spellcheck={false}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          )}
        </Field>
        <Button type="submit" kind="primary" busy={busy}>
          Redeem
        </Button>
      </form>
      {error ? <Notice kind="error">{error}</Notice> : null}
      {done ? (
        <Notice kind="ok">
          <span data-testid="promo-redeemed">
            {done.code}: {usd(done.amount_nano_usd)} of credits added
          </span>
          {done.grant_expires_at ? `, to use by ${day(done.grant_expires_at)}` : ""}.
        </Notice>
      ) : null}
    </Section>
  );
}

const REFERRAL_STATE: Record<Schemas["ReferredOrg"]["state"], string> = {
  linked: "Signed up",
  qualified: "Topped up: reward on its way",
  paid: "Rewarded",
  capped: "Over this month's limit: no reward",
  canceled: "Top-up reversed: no reward",
  rejected: "Not eligible",
  clawed_back: "Reward taken back (top-up reversed)",
};

function Referral() {
  const referrals = useLoad(() => api<Referrals>("GET", "/v1/billing/referrals"));
  const [copied, setCopied] = useState(false);
  return (
    <Section title="Refer a friend">
      <Loaded state={referrals} what="your referral link">
        {(r) => (
          <>
            <p>Share your link: when an organization signs up with it and tops up, you both earn credits.</p>
            <p>
              <code class="wrap" data-testid="referral-link">
                {r.link}
              </code>
            </p>
            <p class="row">
              <Button
                onClick={() =>
                  navigator.clipboard?.writeText(r.link).then(
                    () => setCopied(true),
                    () => {},
                  )
                }
              >
                {copied ? "Copied" : "Copy link"}
              </Button>
            </p>
            <dl class="figures">
              <div>
                <dt>Earned so far</dt>
                <dd data-testid="referral-earned" data-nano={r.credits_earned_nano_usd}>
                  {usd(r.credits_earned_nano_usd)}
                </dd>
              </div>
              <div>
                <dt>Organizations referred</dt>
                <dd>{r.referrals.length}</dd>
              </div>
            </dl>
            {r.referrals.length ? (
              <Table caption="Organizations you referred" head={["Organization", "Since", "State", "Reward"]}>
                {r.referrals.map((x) => (
                  <tr key={x.referral_id}>
                    <td>{x.org_name}</td>
                    <td>{day(x.linked_at)}</td>
                    <td>{REFERRAL_STATE[x.state]}</td>
                    <td class="num">{x.reward_nano_usd ? usd(x.reward_nano_usd) : "—"}</td>
                  </tr>
                ))}
              </Table>
            ) : null}
          </>
        )}
      </Loaded>
    </Section>
  );
}
