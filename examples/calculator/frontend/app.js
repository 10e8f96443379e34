// The front end in JavaScript (componentize-js): an HTTP handler that calls the Rust
// calculator through the imported interface. The two are composed into one component at
// load, so each call is a function call.
import { add, multiply } from "example:calculator/calculate@0.1.0";

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

function handle(request) {
  const url = new URL(request.url);
  const op = url.pathname.split("/").pop();
  const [a, b] = ["a", "b"].map((name) => Number(url.searchParams.get(name) ?? "x"));
  if (![a, b].every((n) => Number.isInteger(n) && Math.abs(n) < 2 ** 31)) {
    return text(400, "give two 32-bit integers: /add?a=2&b=40 or /multiply?a=6&b=7\n");
  }
  try {
    if (op === "add") return text(200, `${add(a, b)}\n`);
    if (op === "multiply") return text(200, `${multiply(a, b)}\n`);
  } catch (e) {
    // A `result` error from the calculator arrives as an exception carrying its payload.
    return text(422, `${e.payload ?? e}\n`);
  }
  return text(404, "try /add?a=2&b=40 or /multiply?a=6&b=7\n");
}

function text(status, body) {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}
