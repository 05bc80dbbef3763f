import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { api, type Schemas } from "../api.ts";
import { time } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Budgets } from "./budgets.tsx";
import { Button, Field, Loaded, Notice, Section, Table, useAction, useLoad } from "../ui.tsx";

type Key = Schemas["ApiKey"];
type Endpoint = Schemas["WebhookEndpoint"];
type Event = Schemas["BillingEvent"];

/** Developers: API keys, budgets, webhook endpoints with their delivery log, and the event log. */
export function DevelopersPage(props: PageProps) {
  const keys = useLoad(() => api<{ data: Key[] }>("GET", "/v1/billing/keys"));
  return (
    <>
      <Keys session={props.session} keys={keys} />
      <Budgets session={props.session} keys={keys.data?.data ?? NO_KEYS} />
      <Webhooks />
      <Events />
    </>
  );
}

/** A secret shown once, right after it was made: never stored by the page, gone when dismissed. */
function OnceSecret(props: { label: string; secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="secret" role="status">
      <p>
        <strong>{props.label}</strong> Copy it now: it won't be shown again.
      </p>
      <code class="wrap" data-testid="once-secret">
        {props.secret}
      </code>
      <div class="row">
        <Button
          onClick={() =>
            navigator.clipboard?.writeText(props.secret).then(
              () => setCopied(true),
              () => {},
            )
          }
        >
          {copied ? "Copied" : "Copy"}
        </Button>
        <Button onClick={props.onDone}>Done</Button>
      </div>
    </div>
  );
}

const NO_KEYS: Key[] = [];

function Keys(props: { session: PageProps["session"]; keys: ReturnType<typeof useLoad<{ data: Key[] }>> }) {
  const keys = props.keys;
  const [name, setName] = useState("");
  const [readOnly, setReadOnly] = useState(false);
  const [created, setCreated] = useState<{ name: string; key: string } | undefined>();
  const create = useAction();
  const revoke = useAction();
  const canWrite = props.session.permissions.includes("keys:write");
  return (
    <Section title="API keys">
      {created ? (
        <OnceSecret
          label={`Your new key “${created.name}”.`}
          secret={created.key}
          onDone={() => setCreated(undefined)}
        />
      ) : null}
      {revoke.error ? <Notice kind="error">{revoke.error}</Notice> : null}
      <Loaded state={keys} what="your API keys">
        {(k) => (
          <Table caption="API keys" head={["Name", "Key", "Created", "Last used", ""]} empty={!k.data.length}>
            {k.data.map((key) => (
              <tr key={key.id} data-testid="key-row" class={key.revoked_at ? "revoked" : undefined}>
                <td>
                  {key.name ?? "(unnamed)"}
                  {key.permissions.includes("keys:write") ? null : <span class="pill">read-only keys</span>}
                  {key.id === props.session.key_id ? <span class="pill">this session</span> : null}
                </td>
                <td>
                  <code>{key.prefix}…</code>
                </td>
                <td>{time(key.created_at)}</td>
                <td>{key.last_used_at ? time(key.last_used_at) : "never"}</td>
                <td>
                  {key.revoked_at ? (
                    `Revoked ${time(key.revoked_at)}`
                  ) : canWrite && key.id !== props.session.key_id ? (
                    <Button
                      kind="danger"
                      busy={revoke.busy}
                      aria-label={`Revoke the key ${key.name ?? key.prefix}`}
                      onClick={() => {
                        if (!confirm(`Revoke “${key.name ?? key.prefix}”? Requests with it will be refused at once.`))
                          return;
                        revoke.run(async () => {
                          await api("DELETE", `/v1/billing/keys/${encodeURIComponent(key.id)}`);
                          await keys.reload();
                        });
                      }}
                    >
                      Revoke
                    </Button>
                  ) : null}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
      {canWrite ? (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (!name.trim()) return create.setError("Give the key a name, like “CI” or “staging”.");
            create.run(async () => {
              const key = await api<Schemas["CreatedApiKey"]>("POST", "/v1/billing/keys", {
                name: name.trim(),
                ...(readOnly ? { permissions: [] } : {}),
              });
              setCreated({ name: name.trim(), key: key.key });
              setName("");
              await keys.reload();
            });
          }}
        >
          <Field label="New key's name">
            {(id) => <input id={id} value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <label class="check">
            <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.currentTarget.checked)} /> Can't
            create or revoke keys
          </label>
          <Button type="submit" kind="primary" busy={create.busy}>
            Create key
          </Button>
          {create.error ? <Notice kind="error">{create.error}</Notice> : null}
        </form>
      ) : (
        <Notice>
          This session can view keys but not create or revoke them (its link was made with a read-only key).
        </Notice>
      )}
    </Section>
  );
}

function Webhooks() {
  const endpoints = useLoad(() => api<{ data: Endpoint[] }>("GET", "/v1/billing/webhooks"));
  const [url, setUrl] = useState("");
  const [created, setCreated] = useState<string | undefined>();
  const [open, setOpen] = useState<string | undefined>();
  const create = useAction();
  const change = useAction();
  return (
    <Section title="Webhooks">
      {created ? (
        <OnceSecret label="The new endpoint's signing secret." secret={created} onDone={() => setCreated(undefined)} />
      ) : null}
      {change.error ? <Notice kind="error">{change.error}</Notice> : null}
      <Loaded state={endpoints} what="your webhook endpoints">
        {(list) => (
          <Table caption="Webhook endpoints" head={["Endpoint", "Status", ""]} empty={!list.data.length}>
            {list.data.map((e) => (
              <Fragment key={e.id}>
                <tr data-testid="webhook-row">
                  <td>
                    <code class="wrap">{e.url}</code>
                    <br />
                    <small>{e.events.length ? e.events.join(", ") : "every event"}</small>
                  </td>
                  <td>
                    {e.enabled
                      ? e.failing_since
                        ? `Failing since ${time(e.failing_since)}`
                        : "Active"
                      : `Disabled${e.disabled_reason ? `: ${e.disabled_reason}` : ""}`}
                  </td>
                  <td class="actions">
                    <Button aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? undefined : e.id)}>
                      {open === e.id ? "Hide deliveries" : "Deliveries"}
                    </Button>
                    <Button
                      busy={change.busy}
                      onClick={() =>
                        change.run(async () =>
                          api("POST", `/v1/billing/webhooks/${e.id}/test`).then(() => setOpen(e.id)),
                        )
                      }
                    >
                      Send test
                    </Button>
                    <Button
                      kind="danger"
                      busy={change.busy}
                      aria-label={`Delete the endpoint ${e.url}`}
                      onClick={() => {
                        if (!confirm(`Delete the endpoint ${e.url}? It will receive nothing more.`)) return;
                        change.run(async () => {
                          await api("DELETE", `/v1/billing/webhooks/${e.id}`);
                          await endpoints.reload();
                        });
                      }}
                    >
                      Delete
                    </Button>
                  </td>
                </tr>
                {open === e.id ? (
                  <tr>
                    <td colSpan={3}>
                      <Deliveries endpointId={e.id} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            ))}
          </Table>
        )}
      </Loaded>
      <form
        class="inline-form"
        onSubmit={(ev) => {
          ev.preventDefault();
          create.run(async () => {
            const made = await api<Schemas["WebhookEndpointWithSecret"]>("POST", "/v1/billing/webhooks", {
              url: url.trim(),
              events: [],
              enabled: true,
            });
            setCreated(made.secret);
            setUrl("");
            await endpoints.reload();
          });
        }}
      >
        <Field label="Endpoint URL (https)">
          {(id) => (
            <input
              id={id}
              type="url"
              value={url}
              placeholder="https://example.com/hooks/hanzo"
              onInput={(e) => setUrl(e.currentTarget.value)}
            />
          )}
        </Field>
        <Button type="submit" kind="primary" busy={create.busy}>
          Add endpoint
        </Button>
        {create.error ? <Notice kind="error">{create.error}</Notice> : null}
      </form>
    </Section>
  );
}

function Deliveries(props: { endpointId: string }) {
  const deliveries = useLoad(
    () =>
      api<{ data: Schemas["WebhookDelivery"][] }>(
        "GET",
        `/v1/billing/webhooks/${props.endpointId}/deliveries?limit=50`,
      ),
    [props.endpointId],
  );
  const retry = useAction();
  return (
    <div class="deliveries">
      <div class="row">
        <strong>Delivery log</strong>
        <Button busy={deliveries.loading} onClick={() => deliveries.reload()}>
          Refresh
        </Button>
      </div>
      {retry.error ? <Notice kind="error">{retry.error}</Notice> : null}
      <Loaded state={deliveries} what="deliveries">
        {(d) => (
          <Table caption="Deliveries" head={["Event", "Status", "Last attempt", ""]} empty={!d.data.length}>
            {d.data.map((x) => {
              const last = x.attempts[x.attempts.length - 1];
              return (
                <tr key={x.id} data-testid="delivery-row">
                  <td>
                    {x.event_type}
                    <br />
                    <small>{time(x.created_at)}</small>
                  </td>
                  <td>
                    <span
                      class={`pill pill-${x.status === "delivered" ? "paid" : x.status === "failed" ? "void" : "open"}`}
                    >
                      {x.status}
                    </span>
                  </td>
                  <td>
                    {last
                      ? `${last.status_code ?? last.error ?? "no answer"} after ${last.duration_ms} ms (attempt ${last.attempt})`
                      : "not yet"}
                  </td>
                  <td>
                    {x.status === "failed" ? (
                      <Button
                        busy={retry.busy}
                        onClick={() =>
                          retry.run(async () => {
                            await api("POST", `/v1/billing/webhooks/${props.endpointId}/deliveries/${x.id}/retry`);
                            await deliveries.reload();
                          })
                        }
                      >
                        Retry
                      </Button>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </Table>
        )}
      </Loaded>
    </div>
  );
}

function Events() {
  const [cursor, setCursor] = useState<string | undefined>();
  const events = useLoad(
    () =>
      api<{ data: Event[]; has_more: boolean; next_cursor: string | null }>(
        "GET",
        `/v1/billing/events?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      ),
    [cursor],
  );
  return (
    <Section title="Event log">
      <Loaded state={events} what="events">
        {(page) => (
          <>
            <Table caption="Events" head={["When", "Event", "Details"]} empty={!page.data.length}>
              {page.data.map((e) => (
                <tr key={e.id} data-testid="event-row">
                  <td>{time(e.timestamp)}</td>
                  <td>
                    <code>{e.type}</code>
                  </td>
                  <td>
                    <details>
                      <summary>Show</summary>
                      <pre>{JSON.stringify(e.data, null, 2)}</pre>
                    </details>
                  </td>
                </tr>
              ))}
            </Table>
            <div class="row">
              {cursor ? <Button onClick={() => setCursor(undefined)}>Newest</Button> : null}
              {page.has_more && page.next_cursor ? (
                <Button onClick={() => setCursor(page.next_cursor ?? undefined)}>Older events</Button>
              ) : null}
            </div>
          </>
        )}
      </Loaded>
    </Section>
  );
}
