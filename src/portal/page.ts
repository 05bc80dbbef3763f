import type { Session } from "./api.ts";

/** What every page of the portal is given (routes.ts maps paths to pages). */
export type PageProps = { session: Session; params: Record<string, string>; query: URLSearchParams };
