/** "12 s ago", "3 min ago", "2 h ago", "5 d ago"; "in 4 s" for a time ahead; "never" for null. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return 'never';
  const seconds = Math.round((now - ms) / 1000);
  const span = Math.abs(seconds);
  let amount: string;
  if (span < 2) return 'just now';
  if (span < 60) amount = `${span} s`;
  else if (span < 3600) amount = `${Math.floor(span / 60)} min`;
  else if (span < 86_400) amount = `${Math.floor(span / 3600)} h`;
  else amount = `${Math.floor(span / 86_400)} d`;
  return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** A <time> element showing a relative time, with the exact time as its datetime and title. */
export function timeElement(ms: number | null | undefined): HTMLTimeElement {
  const element = document.createElement('time');
  element.textContent = ago(ms);
  if (ms !== null && ms !== undefined && Number.isFinite(ms)) {
    const iso = new Date(ms).toISOString();
    element.dateTime = iso;
    element.title = iso;
  }
  return element;
}
