/** The portal's handful of components: a section, a notice, a progress line, a button, a field, a table. */
import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

export function Section(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card" aria-label={props.title}>
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions}
      </header>
      {props.children}
    </section>
  );
}

export function Notice(props: { kind?: "error" | "ok" | "info"; children: ComponentChildren }) {
  const kind = props.kind ?? "info";
  return (
    <p class={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {props.children}
    </p>
  );
}

/** A wait the customer can see: a spinner and what is being waited for. */
export function Progress(props: { children: ComponentChildren }) {
  return (
    <p class="progress" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {props.children}
    </p>
  );
}

export function Button(
  props: ButtonHTMLAttributes<HTMLButtonElement> & { busy?: boolean; kind?: "primary" | "danger" },
) {
  const { busy, kind, children, class: _class, ...rest } = props;
  return (
    <button
      type="button"
      {...rest}
      class={`btn${kind ? ` btn-${kind}` : ""}`}
      disabled={busy || props.disabled}
      aria-busy={busy ? "true" : undefined}
    >
      {busy ? <span class="spinner" aria-hidden="true" /> : null}
      {children}
    </button>
  );
}

export function Field(props: { label: string; hint?: string; children: (id: string) => ComponentChildren }) {
  const id = useRef(`f${Math.random().toString(36).slice(2, 9)}`).current;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id)}
      {props.hint ? <small>{props.hint}</small> : null}
    </div>
  );
}

/**
 * A table; on a phone each row is a card, each cell after its column's name (the CSS reads the
 * cell's data-label, set here from `head` so the pages' rows need not repeat it).
 */
export function Table(props: {
  caption: string;
  head: ComponentChildren[];
  children: ComponentChildren;
  empty?: boolean;
}) {
  const table = useRef<HTMLTableElement>(null);
  useLayoutEffect(() => {
    const names = props.head.map((h) => (typeof h === "string" ? h : ""));
    for (const row of table.current?.tBodies[0]?.rows ?? []) {
      let column = 0;
      for (const cell of row.cells) {
        const name = names[column];
        if (name && cell.colSpan === 1) cell.setAttribute("data-label", name);
        else cell.removeAttribute("data-label");
        column += cell.colSpan;
      }
    }
  });
  return (
    <div class="table-wrap">
      <table ref={table}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.head.map((h, i) => (
              <th key={i} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
      {props.empty ? <p class="muted">Nothing here yet.</p> : null}
    </div>
  );
}

/** Loads `load()` on mount and when `deps` change; `reload()` again on demand. Errors are sentences. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    return load().then(
      (data) => setState({ data, loading: false }),
      (err: unknown) => setState({ error: message(err), loading: false }),
    );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload };
}

/** Runs a write, with its busy state and its error as a sentence. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (err) {
      setError(message(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

export function message(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error && err.message) return err.message;
  return "Something went wrong. Try again.";
}

/** Shows what `load` gave, or its progress, or its error. */
export function Loaded<T>(props: {
  state: { data?: T; error?: string; loading: boolean };
  what: string;
  children: (data: T) => ComponentChildren;
}) {
  if (props.state.data !== undefined) return <>{props.children(props.state.data)}</>;
  if (props.state.error) return <Notice kind="error">{props.state.error}</Notice>;
  return <Progress>Loading {props.what}…</Progress>;
}
