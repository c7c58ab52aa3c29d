// Element building for the page. Every piece of text goes in as a text node (never as HTML): card fields are
// hostile input, and a name like <img src=x onerror=...> must show as those characters.

export type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Array<Child | Child[]>
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Replaces the children of parent. */
export function fill(parent: Node & ParentNode, ...children: Array<Child | Child[]>): void {
  parent.replaceChildren();
  append(parent, children);
}

export function append(parent: Node, children: Array<Child | Child[]>): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A term and its description for a <dl>; nothing when the value is absent. */
export function fact(term: string, ...value: Child[]): Node[] {
  if (value.every((v) => v === undefined || v === null || v === '')) return [];
  return [h('dt', {}, term), h('dd', {}, ...value)];
}

/** A list of short labels (skills, tags), or nothing when empty. */
export function chips(label: string, items: readonly unknown[] | undefined, className = ''): HTMLElement | null {
  if (!items || items.length === 0) return null;
  return h('ul', { class: `chips ${className}`.trim(), 'aria-label': label }, ...items.map((item) => h('li', {}, String(item))));
}

export function text(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}
