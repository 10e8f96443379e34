// The tessera:calc/calculator dependency of the composition tests, in JavaScript
// (componentize-js): it imports outgoing HTTP and files, which it must be denied.
import { Store } from "fermyon:spin/key-value@2.0.0";

export const calculator = {
  add(a, b) { return (a + b) >>> 0; },
  greeting() { return globalThis.process?.env?.GREETING ?? "no greeting"; },
  countGreetings(n) { return 0; },
  kvRoundtrip(key, value) {
    try {
      const store = Store.open("default");
      store.set(key, new TextEncoder().encode(value));
      const got = store.get(key);
      return got === undefined ? "missing" : new TextDecoder().decode(got);
    } catch (e) {
      return `error: ${e.payload?.tag ?? e}`;
    }
  },
  echo(s) { return s; },
};
