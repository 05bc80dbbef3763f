import { useEffect, useState } from "preact/hooks";
import { api, type Schemas } from "../api.ts";
import { pollUntil } from "../poll.ts";
import type { PageProps } from "../page.ts";
import { Button, Loaded, Notice, Progress, Section, Table, useAction, useLoad } from "../ui.tsx";

type Methods = Schemas["PaymentMethods"];
const COUNT_BEFORE_ADD = "portal.cards-before-add";

export function PaymentMethodsPage(props: PageProps) {
  const methods = useLoad(() => api<Methods>("GET", "/v1/billing/payment-methods"));
  const add = useAction();
  const change = useAction();
  const returned = props.query.get("added") === "1";
  const [waiting, setWaiting] = useState(returned);
  const [done, setDone] = useState<string | undefined>();

  // Back from the processor's page: the card arrives by the processor's webhook, a moment later.
  useEffect(() => {
    if (!returned) return;
    const before = Number(sessionStorage.getItem(COUNT_BEFORE_ADD) ?? "0");
    const stop = new AbortController();
    let left = false;
    const timeout = setTimeout(() => stop.abort(), 60_000);
    pollUntil(
      async () => {
        const list = await api<Methods>("GET", "/v1/billing/payment-methods");
        return list.payment_methods.length > before ? list : undefined;
      },
      { signal: stop.signal },
    ).then((list) => {
      setWaiting(false);
      if (list) {
        sessionStorage.removeItem(COUNT_BEFORE_ADD);
        setDone("Your card was added.");
        methods.reload();
      } else if (!left) add.setError("The new card hasn't arrived yet. Reload this page in a minute.");
      history.replaceState(null, "", "/portal/payment-methods");
    });
    return () => {
      left = true;
      clearTimeout(timeout);
      stop.abort();
    };
  }, [returned]);

  const startAdd = (count: number) =>
    add.run(async () => {
      const setup = await api<Schemas["PaymentMethodSetup"]>("POST", "/v1/billing/payment-methods/setup", {
        success_url: `${location.origin}/portal/payment-methods?added=1`,
        cancel_url: `${location.origin}/portal/payment-methods`,
      });
      sessionStorage.setItem(COUNT_BEFORE_ADD, String(count));
      location.assign(setup.url);
    });

  return (
    <Section title="Saved cards">
      {waiting ? <Progress>Waiting for your new card to be confirmed…</Progress> : null}
      {done ? <Notice kind="ok">{done}</Notice> : null}
      {change.error ? <Notice kind="error">{change.error}</Notice> : null}
      <Loaded state={methods} what="your cards">
        {(m) => (
          <>
            <Table caption="Saved cards" head={["Card", "Expires", "", ""]} empty={!m.payment_methods.length}>
              {m.payment_methods.map((pm) => (
                <tr key={pm.id} data-testid="card-row">
                  <td>
                    {pm.brand[0]?.toUpperCase()}
                    {pm.brand.slice(1)} ending in {pm.last4}
                    {pm.default ? <span class="pill pill-paid">Default</span> : null}
                  </td>
                  <td>{pm.exp}</td>
                  <td>
                    {pm.default ? null : (
                      <Button
                        busy={change.busy}
                        onClick={() =>
                          change.run(async () => {
                            await api("POST", `/v1/billing/payment-methods/${pm.id}/default`);
                            await methods.reload();
                          })
                        }
                      >
                        Make default
                      </Button>
                    )}
                  </td>
                  <td>
                    <Button
                      kind="danger"
                      busy={change.busy}
                      aria-label={`Remove the card ending in ${pm.last4}`}
                      onClick={() => {
                        if (!confirm(`Remove the card ending in ${pm.last4}?`)) return;
                        change.run(async () => {
                          await api("DELETE", `/v1/billing/payment-methods/${pm.id}`);
                          setDone(`The card ending in ${pm.last4} was removed.`);
                          await methods.reload();
                        });
                      }}
                    >
                      Remove
                    </Button>
                  </td>
                </tr>
              ))}
            </Table>
            <p>
              <Button kind="primary" busy={add.busy} onClick={() => startAdd(m.payment_methods.length)}>
                Add a card
              </Button>
            </p>
            <p class="muted">You'll enter the card on our payment processor's secure page, then come back here.</p>
          </>
        )}
      </Loaded>
      {add.error ? <Notice kind="error">{add.error}</Notice> : null}
    </Section>
  );
}
