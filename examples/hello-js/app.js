// A JavaScript HTTP component (componentize-js / StarlingMonkey): the fetch-event API
// served through wasi:http/incoming-handler.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  console.log(`js handling ${url.pathname}`);
  event.respondWith(
    new Response(`Hello from JavaScript on Tessera! You asked for ${url.pathname}\n`, {
      headers: { "content-type": "text/plain" },
    }),
  );
});
