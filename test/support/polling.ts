/**
 * Polls a newest-first list (its ids) while `work` runs, once more after, and returns what every
 * poll found new since the one before but listed below something that poll had shown: ids a client
 * that reads until the first id it knows would never see. Empty when the list is in commit order.
 */
export async function appearedBelowKnown(newestIds: () => Promise<string[]>, work: () => Promise<unknown>) {
  let stop = false;
  const polls: string[][] = [];
  const poller = (async () => {
    while (!stop) polls.push(await newestIds());
  })();
  try {
    await work();
  } finally {
    stop = true;
    await poller;
  }
  polls.push(await newestIds());
  const missed: string[] = [];
  for (let p = 1; p < polls.length; p++) {
    const before = new Set(polls[p - 1]);
    const current = polls[p] ?? [];
    const firstKnown = current.findIndex((id) => before.has(id));
    if (firstKnown === -1) continue;
    missed.push(...current.slice(firstKnown).filter((id) => !before.has(id)));
  }
  return missed;
}
