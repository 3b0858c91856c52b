/**
 * The API's Content-Security-Policy allows `<style>` elements only with the nonce it puts in
 * this page's `sbx-style-nonce` meta tag. xterm.js creates `<style>` elements for its theme and
 * cell sizes; every one made through `document.createElement` gets the nonce at creation (before
 * it is inserted, which is when the browser checks it), so the policy needs no 'unsafe-inline'.
 * Imported first by main.tsx, before any library can create a style element.
 */

const PLACEHOLDER = "__SBX_STYLE_NONCE__";

export function styleNonce(doc: Document = document): string | undefined {
  const meta = doc.querySelector<HTMLMetaElement>('meta[name="sbx-style-nonce"]');
  const value = meta?.content ?? "";
  return value === "" || value === PLACEHOLDER ? undefined : value;
}

export function installStyleNonce(doc: Document = document): void {
  const nonce = styleNonce(doc);
  if (nonce === undefined) return; // `npm run dev`: Vite's server sends no policy.
  const prototype = Document.prototype;
  const original = Reflect.get(prototype, "createElement") as (this: Document, ...args: unknown[]) => Element;
  const patched = function (this: Document, ...args: unknown[]): Element {
    const element = original.apply(this, args);
    if (element instanceof HTMLStyleElement) element.setAttribute("nonce", nonce);
    return element;
  };
  Object.defineProperty(prototype, "createElement", { value: patched, writable: true, configurable: true });
}

installStyleNonce();
