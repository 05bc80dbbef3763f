import { useState } from "preact/hooks";
import { api, type Schemas } from "../api.ts";
import { parseUsdInput, period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Button, Field, Loaded, Notice, Section, Table, useAction, useLoad } from "../ui.tsx";

type Budget = Schemas["Budget"];
type Key = Schemas["ApiKey"];
type Scope = Budget["scope"];

const SCOPE_WORDS: Record<Scope, string> = { org: "Whole organization", project: "Project", key: "API key" };

/**
 * Monthly budgets (GET/PUT/DELETE /v1/billing/budgets): the organization's, a project's or a key's;
 * hard ones refuse requests past the limit, soft ones only tell. Setting the same target again
 * changes its budget. Changing them needs a session whose key may manage keys.
 */
export function Budgets(props: { session: PageProps["session"]; keys: Key[] }) {
  const budgets = useLoad(() => api<Schemas["BudgetList"]>("GET", "/v1/billing/budgets"));
  const [scope, setScope] = useState<Scope>("org");
  const [project, setProject] = useState("");
  const [keyId, setKeyId] = useState("");
  const [limit, setLimit] = useState("");
  const [enforcement, setEnforcement] = useState<Budget["enforcement"]>("hard");
  const [saved, setSaved] = useState<string | undefined>();
  const save = useAction();
  const remove = useAction();
  const canWrite = props.session.permissions.includes("keys:write");
  const liveKeys = props.keys.filter((k) => !k.revoked_at);
  const keyName = (id: string | null) => {
    const k = props.keys.find((x) => x.id === id);
    return k ? `${k.name ?? "(unnamed)"} (${k.prefix}…)` : (id ?? "");
  };
  const targetWords = (b: Budget) =>
    b.scope === "org"
      ? SCOPE_WORDS.org
      : b.scope === "project"
        ? `Project ${b.project}`
        : `Key ${keyName(b.api_key_id)}`;
  return (
    <Section title="Budgets">
      <p class="muted">
        A monthly limit (calendar month, UTC) on the organization's spend, a project's or an API key's. A hard budget
        refuses requests that would go past it; a soft one only notifies you.
      </p>
      {remove.error ? <Notice kind="error">{remove.error}</Notice> : null}
      <Loaded state={budgets} what="your budgets">
        {(list) => (
          <Table
            caption="Budgets"
            head={["Applies to", "Kind", "Limit", "Spent this month", "Left", ""]}
            empty={!list.data.length}
          >
            {list.data.map((b) => (
              <tr key={b.id} data-testid="budget-row">
                <td>
                  {targetWords(b)}
                  <br />
                  <small>{period(b.period.start, b.period.end)}</small>
                </td>
                <td>{b.enforcement === "hard" ? "Hard: refuses" : "Soft: notifies"}</td>
                <td class="num" data-nano={b.limit_nano_usd}>
                  {usd(b.limit_nano_usd)}
                </td>
                <td class="num">{usd(b.spent_nano_usd)}</td>
                <td class="num">{usd(b.remaining_nano_usd)}</td>
                <td>
                  {canWrite ? (
                    <Button
                      kind="danger"
                      busy={remove.busy}
                      aria-label={`Delete the budget of ${targetWords(b)}`}
                      onClick={() => {
                        if (!confirm(`Delete the budget of ${targetWords(b)}? Its limit stops applying at once.`))
                          return;
                        remove.run(async () => {
                          await api("DELETE", `/v1/billing/budgets/${encodeURIComponent(b.id)}`);
                          setSaved(undefined);
                          await budgets.reload();
                        });
                      }}
                    >
                      Delete
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
            const amount = parseUsdInput(limit);
            if (!amount) return save.setError("Enter the monthly limit in dollars, like 50 or 49.99.");
            if (scope === "project" && !project.trim()) return save.setError("Enter the project's name.");
            if (scope === "key" && !keyId) return save.setError("Choose the API key.");
            setSaved(undefined);
            save.run(async () => {
              const made = await api<Budget>("PUT", "/v1/billing/budgets", {
                scope,
                ...(scope === "project" ? { project: project.trim() } : {}),
                ...(scope === "key" ? { api_key_id: keyId } : {}),
                limit: amount,
                enforcement,
              });
              setSaved(`Saved: ${usd(made.limit_nano_usd)} a month for ${targetWords(made)}.`);
              setLimit("");
              await budgets.reload();
            });
          }}
        >
          <div class="row">
            <Field label="Budget for">
              {(id) => (
                <select id={id} value={scope} onChange={(e) => setScope(e.currentTarget.value as Scope)}>
                  <option value="org">{SCOPE_WORDS.org}</option>
                  <option value="project">A project</option>
                  <option value="key">An API key</option>
                </select>
              )}
            </Field>
            {scope === "project" ? (
              <Field label="Project">
                {(id) => (
                  <input id={id} value={project} maxLength={64} onInput={(e) => setProject(e.currentTarget.value)} />
                )}
              </Field>
            ) : null}
            {scope === "key" ? (
              <Field label="API key">
                {(id) => (
                  <select id={id} value={keyId} onChange={(e) => setKeyId(e.currentTarget.value)}>
                    <option value="">Choose a key…</option>
                    {liveKeys.map((k) => (
                      <option key={k.id} value={k.id}>
                        {keyName(k.id)}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            ) : null}
            <Field label="Monthly limit (USD)">
              {(id) => (
                <input id={id} inputMode="decimal" value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />
              )}
            </Field>
            <Field label="When reached">
              {(id) => (
                <select
                  id={id}
                  value={enforcement}
                  onChange={(e) => setEnforcement(e.currentTarget.value as Budget["enforcement"])}
                >
                  <option value="hard">Refuse requests (hard)</option>
                  <option value="soft">Only notify me (soft)</option>
                </select>
              )}
            </Field>
          </div>
          <Button type="submit" kind="primary" busy={save.busy}>
            Save budget
          </Button>
          {save.error ? <Notice kind="error">{save.error}</Notice> : null}
          {saved ? <Notice kind="ok">{saved}</Notice> : null}
        </form>
      ) : (
        <Notice>This session can view budgets but not change them (its link was made with a read-only key).</Notice>
      )}
    </Section>
  );
}
