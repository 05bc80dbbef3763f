import { useState } from "preact/hooks";
import { api, ApiError, type Schemas } from "../api.ts";
import { day, period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Button, Field, Loaded, Notice, Section, Table, useAction, useLoad } from "../ui.tsx";

type Invoice = Schemas["Invoice"];
type CreditNote = Schemas["CreditNote"];
type Details = Schemas["BillingDetails"];
type Page<T> = { data: T[]; has_more: boolean; next_cursor: string | null };

const STATUS: Record<Invoice["status"], string> = { draft: "Draft", open: "Due", paid: "Paid", void: "Void" };

const invoicePdf = (id: string) => `/v1/billing/invoices/${encodeURIComponent(id)}.pdf`;
const creditNotePdf = (id: string) => `/v1/billing/credit-notes/${encodeURIComponent(id)}.pdf`;

/** A document's PDF: the session cookie is the credential, so a plain link downloads it. */
function PdfLink(props: { href: string; what: string }) {
  return (
    <a href={props.href} target="_blank" rel="noopener" aria-label={`PDF of ${props.what}`} data-testid="pdf-link">
      PDF
    </a>
  );
}

const refundWords = (n: CreditNote) =>
  n.refund === "credits"
    ? "As credits"
    : `To your card${n.card_refund ? ` (${n.card_refund.status === "succeeded" ? "refunded" : n.card_refund.status})` : ""}`;

/** Invoices, credit notes and the billing details printed on them. */
export function InvoicesPage(_: PageProps) {
  const invoices = useLoad(() => api<Page<Invoice>>("GET", "/v1/billing/invoices?limit=100"));
  const notes = useLoad(() => api<Page<CreditNote>>("GET", "/v1/billing/credit-notes?limit=100"));
  return (
    <>
      <Section title="Your invoices">
        <Loaded state={invoices} what="your invoices">
          {(page) => (
            <Table
              caption="Invoices"
              head={["Invoice", "Period", "Status", "Amount due", ""]}
              empty={!page.data.length}
            >
              {page.data.map((i) => (
                <tr key={i.id} data-testid="invoice-row">
                  <td>
                    <a href={`/portal/invoices/${encodeURIComponent(i.id)}`}>{i.number}</a>
                  </td>
                  <td>{period(i.period.start, i.period.end)}</td>
                  <td>
                    <span class={`pill pill-${i.status}`}>{STATUS[i.status]}</span>
                  </td>
                  <td class="num">{usd(i.amount_due_nano_usd)}</td>
                  <td>
                    {i.status === "draft" ? null : <PdfLink href={invoicePdf(i.id)} what={`invoice ${i.number}`} />}
                  </td>
                </tr>
              ))}
            </Table>
          )}
        </Loaded>
      </Section>
      <Section title="Credit notes">
        <Loaded state={notes} what="your credit notes">
          {(page) => <CreditNotes notes={page.data} />}
        </Loaded>
      </Section>
      <BillingDetails />
    </>
  );
}

function CreditNotes(props: { notes: CreditNote[] }) {
  return (
    <Table
      caption="Credit notes"
      head={["Credit note", "For invoice", "Reason", "Refunded", "Total", ""]}
      empty={!props.notes.length}
    >
      {props.notes.map((n) => (
        <tr key={n.id} data-testid="credit-note-row">
          <td>
            {n.number}
            <br />
            <small>{day(n.issued_at)}</small>
          </td>
          <td>
            <a href={`/portal/invoices/${encodeURIComponent(n.invoice_id)}`}>{n.invoice_number}</a>
          </td>
          <td>{n.reason}</td>
          <td>{refundWords(n)}</td>
          <td class="num" data-nano={n.total_nano_usd}>
            {usd(n.total_nano_usd)}
          </td>
          <td>
            <PdfLink href={creditNotePdf(n.id)} what={`credit note ${n.number}`} />
          </td>
        </tr>
      ))}
    </Table>
  );
}

export function InvoicePage(props: PageProps) {
  const id = props.params.id ?? "";
  const invoice = useLoad(() => api<Invoice>("GET", `/v1/billing/invoices/${encodeURIComponent(id)}`), [id]);
  const notes = useLoad(() => api<Page<CreditNote>>("GET", "/v1/billing/credit-notes?limit=100"));
  return (
    <>
      <p>
        <a href="/portal/invoices">← All invoices</a>
      </p>
      <Loaded state={invoice} what="the invoice">
        {(i) => (
          <>
            <Section
              title={`Invoice ${i.number}`}
              actions={
                i.status === "draft" ? null : (
                  <a class="btn" href={invoicePdf(i.id)} target="_blank" rel="noopener" data-testid="invoice-pdf">
                    Download PDF
                  </a>
                )
              }
            >
              <dl class="figures">
                <div>
                  <dt>Status</dt>
                  <dd>
                    <span class={`pill pill-${i.status}`} data-testid="invoice-status">
                      {STATUS[i.status]}
                    </span>
                  </dd>
                </div>
                <div>
                  <dt>Period</dt>
                  <dd class="small" data-testid="invoice-period">
                    {period(i.period.start, i.period.end)}
                  </dd>
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
                {i.voided_at ? (
                  <div>
                    <dt>Voided</dt>
                    <dd class="small">{day(i.voided_at)}</dd>
                  </div>
                ) : null}
              </dl>
              {i.billing_details ? (
                <p class="muted">
                  Billed to {i.billing_details.legal_name}, {i.billing_details.city}, {i.billing_details.country}
                  {i.billing_details.tax_id ? ` (tax id ${i.billing_details.tax_id})` : ""}.
                </p>
              ) : null}
            </Section>
            <Section title="Lines">
              <Table caption="Invoice lines" head={["Description", "Period", "Amount"]} empty={!i.lines?.length}>
                {(i.lines ?? []).map((l, n) => (
                  <tr key={n} data-testid="invoice-line">
                    <td>{l.description}</td>
                    <td>{l.period.start && l.period.end ? period(l.period.start, l.period.end) : "—"}</td>
                    <td class="num" data-nano={l.amount_nano_usd}>
                      {usd(l.amount_nano_usd)}
                    </td>
                  </tr>
                ))}
              </Table>
              <dl class="totals">
                <dt>Subtotal</dt>
                <dd data-testid="invoice-subtotal" data-nano={i.subtotal_nano_usd}>
                  {usd(i.subtotal_nano_usd)}
                </dd>
                <dt>Credits applied</dt>
                <dd data-testid="credits-applied" data-nano={i.credits_applied_nano_usd}>
                  −{usd(i.credits_applied_nano_usd)}
                </dd>
                <dt>Amount due</dt>
                <dd data-testid="amount-due" data-nano={i.amount_due_nano_usd}>
                  {usd(i.amount_due_nano_usd)}
                </dd>
              </dl>
            </Section>
            <Loaded state={notes} what="credit notes">
              {(page) => {
                const mine = page.data.filter((n) => n.invoice_id === i.id);
                return mine.length ? (
                  <Section title="Credit notes for this invoice">
                    <CreditNotes notes={mine} />
                  </Section>
                ) : null;
              }}
            </Loaded>
          </>
        )}
      </Loaded>
    </>
  );
}

const NO_DETAILS: Details = {
  legal_name: "",
  address_lines: [],
  city: "",
  postal_code: null,
  country: "",
  tax_id: null,
  invoice_email: null,
  updated_at: "",
};

/** The billing details on future invoices and credit notes; none yet is a 404 from the API, shown as an empty form. */
function BillingDetails() {
  const details = useLoad(() =>
    api<Details>("GET", "/v1/billing/details").catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 404) return NO_DETAILS;
      throw err;
    }),
  );
  return (
    <Section title="Billing details">
      <Loaded state={details} what="your billing details">
        {(d) => <DetailsForm details={d} onSaved={details.reload} />}
      </Loaded>
    </Section>
  );
}

function DetailsForm(props: { details: Details; onSaved: () => void }) {
  const d = props.details;
  const [form, setForm] = useState({
    legal_name: d.legal_name,
    address: d.address_lines.join("\n"),
    city: d.city,
    postal_code: d.postal_code ?? "",
    country: d.country,
    tax_id: d.tax_id ?? "",
    invoice_email: d.invoice_email ?? "",
  });
  const [saved, setSaved] = useState(false);
  const save = useAction();
  const set = (k: keyof typeof form) => (e: { currentTarget: { value: string } }) =>
    setForm({ ...form, [k]: e.currentTarget.value });
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        const lines = form.address
          .split("\n")
          .map((l) => l.trim())
          .filter(Boolean);
        if (!form.legal_name.trim()) return save.setError("Enter the legal name to print on invoices.");
        if (lines.length < 1 || lines.length > 3)
          return save.setError("Enter the street address on one to three lines.");
        if (!/^[A-Za-z]{2}$/.test(form.country.trim()))
          return save.setError("Enter the country as its two-letter code, like DE or US.");
        setSaved(false);
        save.run(async () => {
          await api("PUT", "/v1/billing/details", {
            legal_name: form.legal_name.trim(),
            address_lines: lines,
            city: form.city.trim(),
            postal_code: form.postal_code.trim() || null,
            country: form.country.trim().toUpperCase(),
            tax_id: form.tax_id.trim() || null,
            invoice_email: form.invoice_email.trim() || null,
          });
          setSaved(true);
          props.onSaved();
        });
      }}
    >
      {d.updated_at ? null : (
        <p class="muted">Not set yet: invoices show your organization's name until you add them.</p>
      )}
      <div class="row">
        <Field label="Legal name">
          {(id) => <input id={id} value={form.legal_name} maxLength={200} onInput={set("legal_name")} />}
        </Field>
        <Field label="Tax id (VAT, EIN…)" hint="Printed as you give it">
          {(id) => <input id={id} value={form.tax_id} maxLength={64} onInput={set("tax_id")} />}
        </Field>
      </div>
      <Field label="Street address" hint="One to three lines">
        {(id) => <textarea id={id} rows={3} value={form.address} onInput={set("address")} />}
      </Field>
      <div class="row">
        <Field label="City">{(id) => <input id={id} value={form.city} maxLength={100} onInput={set("city")} />}</Field>
        <Field label="Postal code">
          {(id) => <input id={id} value={form.postal_code} maxLength={20} onInput={set("postal_code")} />}
        </Field>
        <Field label="Country code">
          {(id) => (
            <input
              id={id}
              value={form.country}
              maxLength={2}
              size={3}
              autocomplete="country"
              onInput={set("country")}
            />
          )}
        </Field>
      </div>
      <Field label="Email for invoices">
        {(id) => <input id={id} type="email" value={form.invoice_email} onInput={set("invoice_email")} />}
      </Field>
      <Button type="submit" kind="primary" busy={save.busy}>
        Save billing details
      </Button>
      {save.error ? <Notice kind="error">{save.error}</Notice> : null}
      {saved ? <Notice kind="ok">Saved. New invoices and credit notes will show these details.</Notice> : null}
    </form>
  );
}
