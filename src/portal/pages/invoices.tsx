import { api, type Schemas } from "../api.ts";
import { day, period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Loaded, Section, Table, useLoad } from "../ui.tsx";

type Invoice = Schemas["Invoice"];
type InvoicePage = { data: Invoice[]; has_more: boolean; next_cursor: string | null };

const STATUS: Record<Invoice["status"], string> = { draft: "Draft", open: "Due", paid: "Paid", void: "Void" };

export function InvoicesPage(_: PageProps) {
  const invoices = useLoad(() => api<InvoicePage>("GET", "/v1/billing/invoices?limit=100"));
  return (
    <Section title="Your invoices">
      <Loaded state={invoices} what="your invoices">
        {(page) => (
          <Table caption="Invoices" head={["Invoice", "Period", "Status", "Amount due"]} empty={!page.data.length}>
            {page.data.map((i) => (
              <tr key={i.id}>
                <td>
                  <a href={`/portal/invoices/${encodeURIComponent(i.id)}`}>{i.number}</a>
                </td>
                <td>{period(i.period.start, i.period.end)}</td>
                <td>
                  <span class={`pill pill-${i.status}`}>{STATUS[i.status]}</span>
                </td>
                <td class="num">{usd(i.amount_due_nano_usd)}</td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
    </Section>
  );
}

export function InvoicePage(props: PageProps) {
  const id = props.params.id ?? "";
  const invoice = useLoad(() => api<Invoice>("GET", `/v1/billing/invoices/${encodeURIComponent(id)}`), [id]);
  return (
    <>
      <p>
        <a href="/portal/invoices">← All invoices</a>
      </p>
      <Loaded state={invoice} what="the invoice">
        {(i) => (
          <>
            <Section title={`Invoice ${i.number}`}>
              <dl class="figures">
                <div>
                  <dt>Status</dt>
                  <dd>
                    <span class={`pill pill-${i.status}`}>{STATUS[i.status]}</span>
                  </dd>
                </div>
                <div>
                  <dt>Period</dt>
                  <dd class="small">{period(i.period.start, i.period.end)}</dd>
                </div>
                <div>
                  <dt>Issued</dt>
                  <dd class="small">{day(i.issued_at)}</dd>
                </div>
                {i.paid_at ? (
                  <div>
                    <dt>Paid</dt>
                    <dd class="small">{day(i.paid_at)}</dd>
                  </div>
                ) : null}
              </dl>
            </Section>
            <Section title="Lines">
              <Table caption="Invoice lines" head={["Description", "Period", "Amount"]} empty={!i.lines?.length}>
                {(i.lines ?? []).map((l, n) => (
                  <tr key={n}>
                    <td>{l.description}</td>
                    <td>{l.period.start && l.period.end ? period(l.period.start, l.period.end) : "—"}</td>
                    <td class="num">{usd(l.amount_nano_usd)}</td>
                  </tr>
                ))}
              </Table>
              <dl class="totals">
                <dt>Subtotal</dt>
                <dd>{usd(i.subtotal_nano_usd)}</dd>
                <dt>Credits applied</dt>
                <dd>−{usd(i.credits_applied_nano_usd)}</dd>
                <dt>Amount due</dt>
                <dd data-testid="amount-due">{usd(i.amount_due_nano_usd)}</dd>
              </dl>
            </Section>
          </>
        )}
      </Loaded>
    </>
  );
}
