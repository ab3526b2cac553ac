/** The report's HTML building blocks: text is escaped here, so sections only ever pass strings or finished SVG. */

export const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export const num = (v: number | null | undefined, digits = 4) =>
  v === undefined || v === null || !Number.isFinite(v) ? '–' : v.toFixed(digits);
export const count = (v: number) => v.toLocaleString('en-US');

/** A two-column table of names and values. */
export function table(rows: [string, string][]): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('')}</table>`;
}

/** A table cell: text (escaped), or HTML made by the report itself (an image). */
export type Cell = string | { html: string };

/** A table with a header row; `id` names it for links and tests. */
export function grid(headers: string[], rows: Cell[][], id?: string): string {
  const cell = (c: Cell) => `<td>${typeof c === 'string' ? escape(c) : c.html}</td>`;
  return (
    `<table class="grid"${id ? ` id="${escape(id)}"` : ''}><thead><tr>${headers.map((h) => `<th>${escape(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`
  );
}

export const figure = (id: string, svg: string) => `<figure class="plot" id="${escape(id)}">${svg}</figure>`;
export const note = (text: string) => `<p>${escape(text)}</p>`;

/** An id for an output's elements: its name with anything but letters, digits, - and _ replaced. */
export const idOf = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, '_');
