import { type ComponentChild, render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, loadSession, type Session } from "./api.ts";
import { BASE, interceptLinks, useLocation } from "./router.ts";
import { match, ROUTES } from "./routes.ts";
import { Button, Notice, useAction } from "./ui.tsx";
import "./styles.css";

function App(props: { session: Session }) {
  const { path, query } = useLocation();
  const found = match(path);
  const heading = useRef<HTMLHeadingElement>(null);
  const signOut = useAction();
  const title = found?.route.title ?? "Page not found";
  useEffect(() => {
    document.title = `${title} · Hanzo Billing`;
    heading.current?.focus({ preventScroll: true }); // a screen reader or keyboard user starts at the new page
  }, [title, path]);
  const Page = found?.route.page;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={`${BASE}/`}>
          Hanzo Billing
        </a>
        <nav aria-label="Billing">
          {ROUTES.filter((r) => r.nav).map((r) => (
            <a
              key={r.path}
              href={`${BASE}${r.path === "/" ? "/" : r.path}`}
              aria-current={
                found?.route.path === r.path || (r.path !== "/" && path.startsWith(`${r.path}/`)) ? "page" : undefined
              }
            >
              {r.nav}
            </a>
          ))}
        </nav>
        <Button
          busy={signOut.busy}
          onClick={() =>
            signOut.run(async () => {
              await api("DELETE", `/v1/billing/portal-sessions/${props.session.id}`);
              show(<Ended signedOut />);
            })
          }
        >
          Sign out
        </Button>
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>
          {title}
        </h1>
        {signOut.error ? <Notice kind="error">{signOut.error}</Notice> : null}
        {Page && found ? (
          <Page session={props.session} params={found.params} query={query} />
        ) : (
          <Notice>
            There is no such page. <a href={`${BASE}/`}>Go to the overview</a>.
          </Notice>
        )}
      </main>
    </>
  );
}

function Ended(props: { signedOut?: boolean }) {
  return (
    <main id="main" class="ended">
      <h1>{props.signedOut ? "You're signed out" : "Your billing session has ended"}</h1>
      <p>To manage billing again, open a new billing link from your Hanzo console or CLI.</p>
    </main>
  );
}

function Failed(props: { message: string }) {
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="ended">
      <h1>The billing portal could not start</h1>
      <Notice kind="error">{props.message}</Notice>
      <Button
        busy={busy}
        onClick={() => {
          setBusy(true);
          location.reload();
        }}
      >
        Try again
      </Button>
    </main>
  );
}

const root = document.getElementById("app") as HTMLElement;
interceptLinks(root);
const show = (app: ComponentChild) => {
  if (root.querySelector(".boot")) root.textContent = ""; // the static "Loading…" line goes with the first render
  render(app, root);
};
loadSession(() => show(<Ended />)).then(
  (session) => show(session ? <App session={session} /> : <Ended />),
  (err: Error) => show(<Failed message={err.message} />),
);
