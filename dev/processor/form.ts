/**
 * Decodes the processor API's request bodies and query strings: `application/x-www-form-urlencoded`
 * with bracketed keys (`metadata[org_id]=…`, `line_items[0][price_data][unit_amount]=500`), as the
 * `stripe` SDK encodes them. Every leaf stays a string, as the processor receives it; a numeric
 * index makes an array.
 */
export type FormValue = string | FormValue[] | { [key: string]: FormValue };
export type Form = { [key: string]: FormValue };

export function parseForm(text: string): Form {
  const root: Form = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = keyPath(key);
    let node: Record<string, FormValue> | FormValue[] = root;
    for (let i = 0; i < path.length; i++) {
      const part = path[i] as string;
      const last = i === path.length - 1;
      const slot = Array.isArray(node) ? Number(part) : part;
      if (last) {
        (node as Record<string | number, FormValue>)[slot] = value;
        break;
      }
      const nextIsIndex = /^\d+$/.test(path[i + 1] as string);
      let child = (node as Record<string | number, FormValue>)[slot];
      if (child === undefined || typeof child === "string") {
        child = nextIsIndex ? [] : {};
        (node as Record<string | number, FormValue>)[slot] = child;
      }
      node = child as Record<string, FormValue> | FormValue[];
    }
  }
  return root;
}

/** `a[b][0]` → ["a", "b", "0"]. */
function keyPath(key: string): string[] {
  const first = key.indexOf("[");
  if (first < 0) return [key];
  const parts = [key.slice(0, first)];
  for (const m of key.slice(first).matchAll(/\[([^\]]*)\]/g)) parts.push(m[1] ?? "");
  return parts;
}

/** Reads a nested string leaf, e.g. `str(form, "invoice_settings", "default_payment_method")`. */
export function str(form: FormValue | undefined, ...path: (string | number)[]): string | undefined {
  let node: FormValue | undefined = form;
  for (const p of path) {
    if (node === undefined || typeof node === "string") return undefined;
    node = Array.isArray(node) ? node[Number(p)] : node[String(p)];
  }
  return typeof node === "string" ? node : undefined;
}

/** A flat string map (metadata), or {} when absent. */
export function record(form: FormValue | undefined): Record<string, string> {
  if (form === undefined || typeof form === "string" || Array.isArray(form)) return {};
  return Object.fromEntries(Object.entries(form).filter((e): e is [string, string] => typeof e[1] === "string"));
}

/** A list of sub-forms (line_items), or [] when absent. */
export function list(form: FormValue | undefined): FormValue[] {
  return Array.isArray(form) ? form.filter((v) => v !== undefined) : [];
}
