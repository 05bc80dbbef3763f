import { useEffect, useRef, useState } from "preact/hooks";
import { api, newIdempotencyKey, type Schemas } from "../api.ts";
import { parseUsdInput, shortHash, toBaseUnits, usd } from "../format.ts";
import { pollUntil } from "../poll.ts";
import type { PageProps } from "../page.ts";
import { Button, Field, Loaded, Notice, Progress, Section, useAction, useLoad } from "../ui.tsx";

type Deposit = Schemas["HusdDeposit"];
type Address = Schemas["HusdDepositAddress"];
const PENDING_TOPUP = "portal.pending-topup";

export function TopUpPage(_: PageProps) {
  return (
    <div class="grid">
      <CardTopUp />
      <HusdTopUp />
    </div>
  );
}

function CardTopUp() {
  const [amount, setAmount] = useState("25.00");
  const pay = useAction();
  // One intent per form as filled in: a second click (or a retry after a lost answer) is the same top-up.
  const intent = useRef({ amount: "", key: "" });
  return (
    <Section title="Pay by card">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const value = parseUsdInput(amount);
          if (!value) return pay.setError("Enter an amount in dollars, like 25 or 25.50.");
          if (intent.current.amount !== value) intent.current = { amount: value, key: newIdempotencyKey() };
          pay.run(async () => {
            const topup = await api<Schemas["TopupSession"]>(
              "POST",
              "/v1/billing/topups",
              {
                amount: value,
                success_url: `${location.origin}/portal/top-up/return`,
                cancel_url: `${location.origin}/portal/top-up`,
              },
              { idempotencyKey: intent.current.key },
            );
            sessionStorage.setItem(PENDING_TOPUP, topup.id);
            location.assign(topup.url);
          });
        }}
      >
        <Field label="Amount (USD)">
          {(id) => (
            <input id={id} inputMode="decimal" value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
          )}
        </Field>
        <Button type="submit" kind="primary" busy={pay.busy}>
          Continue to payment
        </Button>
        {pay.error ? <Notice kind="error">{pay.error}</Notice> : null}
        <p class="muted">You'll pay on our payment processor's secure page, then come back here.</p>
      </form>
    </Section>
  );
}

/** Back from the processor's checkout: watches the top-up until it is credited (or failed). */
export function TopUpReturnPage(_: PageProps) {
  const [topup, setTopup] = useState<Schemas["Topup"] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const id = sessionStorage.getItem(PENDING_TOPUP);
  useEffect(() => {
    if (!id) return;
    const stop = new AbortController();
    let left = false;
    const timeout = setTimeout(() => stop.abort(), 120_000);
    pollUntil(
      async () => {
        const page = await api<Schemas["TopupPage"]>("GET", "/v1/billing/topups?limit=50");
        const found = page.data.find((t) => t.id === id);
        setTopup(found);
        return found && found.status !== "pending" ? found : undefined;
      },
      { signal: stop.signal, onError: () => {} },
    ).then((done) => {
      if (done) sessionStorage.removeItem(PENDING_TOPUP);
      else if (!left)
        setError("Your payment hasn't been confirmed yet. It will be credited when it is: check your balance later.");
    });
    return () => {
      left = true;
      clearTimeout(timeout);
      stop.abort();
    };
  }, [id]);
  if (!id)
    return (
      <Notice>
        There is no card top-up waiting here. <a href="/portal/top-up">Top up</a>.
      </Notice>
    );
  return (
    <Section title="Card top-up">
      {error ? <Notice kind="error">{error}</Notice> : null}
      {!topup || topup.status === "pending" ? (
        error ? null : (
          <Progress>Waiting for your payment to be confirmed…</Progress>
        )
      ) : topup.status === "succeeded" ? (
        <Notice kind="ok">
          <span data-testid="topup-state">Credited</span>: {usd(topup.amount_nano_usd)} was added to your balance.{" "}
          <a href="/portal/">See your balance</a>.
        </Notice>
      ) : (
        <Notice kind="error">
          <span data-testid="topup-state">
            The payment {topup.status === "failed" ? "failed" : `was ${topup.status}`}
          </span>
          . Nothing was added. <a href="/portal/top-up">Try again</a>, perhaps with another card.
        </Notice>
      )}
    </Section>
  );
}

function HusdTopUp() {
  const address = useLoad(() => api<Address>("GET", "/v1/billing/husd/deposit-address"));
  const [sent, setSent] = useState<{ hash: string; recorded?: Deposit } | undefined>();
  const onSent = (hash: string, recorded?: Deposit) => setSent({ hash, recorded });
  return (
    <Section title="Pay with HUSD">
      <Loaded state={address} what="your deposit address">
        {(a) => (
          <>
            <WalletSend address={a} onSent={onSent} />
            <ManualDeposit address={a} onRecorded={onSent} />
            {sent ? <DepositWatch key={sent.hash} txHash={sent.hash} recorded={sent.recorded} address={a} /> : null}
          </>
        )}
      </Loaded>
    </Section>
  );
}

type Recorded = (hash: string, recorded?: Deposit) => void;

function WalletSend(props: { address: Address; onSent: Recorded }) {
  const a = props.address;
  const [account, setAccount] = useState<string | undefined>();
  const [amount, setAmount] = useState("10");
  const [step, setStep] = useState<string | undefined>();
  const action = useAction();
  const hasWallet = typeof (window as { ethereum?: unknown }).ethereum === "object";
  if (!hasWallet)
    return <p class="muted">No browser wallet found: send HUSD to your deposit address below from any wallet.</p>;
  const withWallet = async <T,>(fn: (w: typeof import("../wallet.ts")) => Promise<T>) => {
    const wallet = await import("../wallet.ts");
    try {
      return await fn(wallet);
    } catch (err) {
      throw new Error(wallet.walletMessage(err));
    }
  };
  return (
    <div class="wallet">
      {account ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const units = toBaseUnits(amount, a.token_decimals);
            if (!units || units <= 0n) return action.setError("Enter an amount of HUSD, like 10 or 12.5.");
            action
              .run(async () => {
                setStep("Confirm the transfer in your wallet…");
                const hash = await withWallet((w) =>
                  w.sendHusd({
                    from: account as `0x${string}`,
                    token: a.token_address as `0x${string}`,
                    to: a.address as `0x${string}`,
                    amount: units,
                  }),
                );
                setStep(`Sent (${shortHash(hash)}). Waiting for it to be included in a block…`);
                const stop = new AbortController();
                const timer = setTimeout(() => stop.abort(), 180_000);
                const ok = await withWallet((w) => w.waitForReceipt(hash, stop.signal)).finally(() =>
                  clearTimeout(timer),
                );
                if (!ok) throw new Error("The transfer did not go through on chain. Nothing was sent; try again.");
                setStep(undefined);
                await api("POST", "/v1/billing/husd/topups", { tx_hash: hash });
                props.onSent(hash);
              })
              .finally(() => setStep(undefined));
          }}
        >
          <p>
            Connected: <code>{shortHash(account)}</code>
          </p>
          <Field label="Amount (HUSD)" hint="1 HUSD = 1 USD of credit">
            {(id) => (
              <input id={id} inputMode="decimal" value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
            )}
          </Field>
          <Button type="submit" kind="primary" busy={action.busy}>
            Send HUSD
          </Button>
        </form>
      ) : (
        <Button
          kind="primary"
          busy={action.busy}
          onClick={() =>
            action
              .run(async () => {
                setStep("Approve the connection in your wallet…");
                setAccount(await withWallet((w) => w.connectWallet({ id: a.chain_id, ...a.chain }, setStep)));
              })
              .finally(() => setStep(undefined))
          }
        >
          Connect wallet
        </Button>
      )}
      {step ? <Progress>{step}</Progress> : null}
      {action.error ? <Notice kind="error">{action.error}</Notice> : null}
    </div>
  );
}

function ManualDeposit(props: { address: Address; onRecorded: Recorded }) {
  const a = props.address;
  const [qr, setQr] = useState<string | undefined>();
  const [hash, setHash] = useState("");
  const action = useAction();
  useEffect(() => {
    import("qrcode").then(
      (q) => q.toDataURL(a.address, { margin: 1, width: 160 }).then(setQr),
      () => {},
    );
  }, [a.address]);
  return (
    <details class="manual">
      <summary>Send from another wallet</summary>
      <p>
        Send HUSD (token <code class="wrap">{a.token_address}</code>, chain {a.chain_id}) to your deposit address:
      </p>
      <p>
        <code class="wrap" data-testid="deposit-address">
          {a.address}
        </code>
      </p>
      {qr ? <img src={qr} width={160} height={160} alt={`QR code of the deposit address ${a.address}`} /> : null}
      <p class="muted">
        It is credited after {a.finality}. We find deposits by ourselves; to speed it up, give us the transaction:
      </p>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const tx = hash.trim();
          if (!/^0x[0-9a-fA-F]{64}$/.test(tx))
            return action.setError("A transaction hash is 0x followed by 64 hex characters.");
          action.run(async () => {
            const recorded = await api<{ deposits: Deposit[] }>("POST", "/v1/billing/husd/topups", { tx_hash: tx });
            props.onRecorded(tx, recorded.deposits[0]);
          });
        }}
      >
        <Field label="Transaction hash">
          {(id) => <input id={id} value={hash} spellcheck={false} onInput={(e) => setHash(e.currentTarget.value)} />}
        </Field>
        <Button type="submit" busy={action.busy}>
          Check transaction
        </Button>
      </form>
      {action.error ? <Notice kind="error">{action.error}</Notice> : null}
    </details>
  );
}

const STATE_WORDS: Record<Deposit["state"], string> = {
  seen: "Seen on chain",
  confirming: "Confirming",
  credited: "Credited",
  orphaned: "Dropped from the chain (a reorganisation): not credited",
  rejected: "Not credited",
  reversed: "Reversed",
};

/** The deposit of `txHash`, live: seen → confirming (its confirmations) → credited. */
/** A deposit is first seen, then confirming, then credited: one first met further on was seen before. */
const seenFirst = (d: Deposit) => (d.state === "seen" ? [stateLine(d)] : [STATE_WORDS.seen, stateLine(d)]);

const stateLine = (d: Deposit) => (d.state === "confirming" ? `Confirming (${d.confirmations})` : STATE_WORDS[d.state]);

function DepositWatch(props: { txHash: string; recorded?: Deposit | undefined; address: Address }) {
  const [deposit, setDeposit] = useState<Deposit | undefined>(props.recorded);
  // What the customer saw happen, in order: the state the top-up was recorded in comes first.
  const [history, setHistory] = useState<string[]>(props.recorded ? seenFirst(props.recorded) : []);
  useEffect(() => {
    const stop = new AbortController();
    pollUntil(
      async () => {
        const list = await api<{ data: Deposit[] }>("GET", "/v1/billing/husd/deposits?limit=50");
        const d = list.data.find((x) => x.tx_hash.toLowerCase() === props.txHash.toLowerCase());
        if (d) {
          setDeposit(d);
          const line = stateLine(d);
          setHistory((h) => (h.length === 0 ? seenFirst(d) : h[h.length - 1] === line ? h : [...h, line]));
        }
        return d && !["seen", "confirming"].includes(d.state) ? d : undefined;
      },
      { signal: stop.signal, everyMs: 700, onError: () => {} },
    );
    return () => stop.abort();
  }, [props.txHash]);
  const done = deposit && !["seen", "confirming"].includes(deposit.state);
  return (
    <div class="watch" aria-live="polite">
      <h3>Your deposit</h3>
      <ol class="steps" data-testid="deposit-history">
        {history.map((h) => (
          <li key={h}>{h}</li>
        ))}
      </ol>
      {!deposit ? <Progress>Looking for your transfer on chain…</Progress> : null}
      {deposit && !done ? (
        <Progress>
          <span data-testid="deposit-state">{stateLine(deposit)}</span> — credited after {props.address.finality}.
        </Progress>
      ) : null}
      {deposit && done ? (
        <Notice kind={deposit.state === "credited" ? "ok" : "error"}>
          <span data-testid="deposit-state">{STATE_WORDS[deposit.state]}</span>
          {deposit.state === "credited"
            ? `: ${usd(deposit.amount_nano_usd)} was added to your balance.`
            : deposit.reason
              ? ` (${deposit.reason}).`
              : "."}
        </Notice>
      ) : null}
    </div>
  );
}
