/**
 * Every page of the portal, in the order of its navigation. A new page is one file under pages/
 * and one entry here.
 */
import type { FunctionComponent } from "preact";
import type { PageProps } from "./page.ts";
import { CostsPage } from "./pages/costs.tsx";
import { CreditsPage } from "./pages/credits.tsx";
import { DevelopersPage } from "./pages/developers.tsx";
import { InvoicePage, InvoicesPage } from "./pages/invoices.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { PaymentMethodsPage } from "./pages/payment-methods.tsx";
import { TopUpPage, TopUpReturnPage } from "./pages/top-up.tsx";

export type PortalRoute = {
  /** "/invoices/:id": a `:name` segment becomes params.name. */
  path: string;
  title: string;
  /** Shown in the navigation when set. */
  nav?: string;
  page: FunctionComponent<PageProps>;
};

export const ROUTES: PortalRoute[] = [
  { path: "/", title: "Overview", nav: "Overview", page: OverviewPage },
  { path: "/costs", title: "Cost view", nav: "Costs", page: CostsPage },
  { path: "/invoices", title: "Invoices", nav: "Invoices", page: InvoicesPage },
  { path: "/invoices/:id", title: "Invoice", page: InvoicePage },
  { path: "/credits", title: "Credits", nav: "Credits", page: CreditsPage },
  { path: "/payment-methods", title: "Payment methods", nav: "Payment methods", page: PaymentMethodsPage },
  { path: "/top-up", title: "Top up", nav: "Top up", page: TopUpPage },
  { path: "/top-up/return", title: "Top-up status", page: TopUpReturnPage },
  { path: "/developers", title: "Developers", nav: "Developers", page: DevelopersPage },
];

export function match(path: string): { route: PortalRoute; params: Record<string, string> } | null {
  for (const route of ROUTES) {
    const want = route.path.split("/");
    const got = path.split("/");
    if (want.length !== got.length) continue;
    const params: Record<string, string> = {};
    if (
      want.every((seg, i) => {
        const value = got[i] ?? "";
        if (seg.startsWith(":")) {
          params[seg.slice(1)] = decodeURIComponent(value);
          return value.length > 0;
        }
        return seg === value;
      })
    )
      return { route, params };
  }
  return null;
}
