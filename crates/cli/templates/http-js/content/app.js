// An HTTP component in JavaScript (componentize-js / StarlingMonkey): the fetch-event API
// served through wasi:http/incoming-handler.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  console.log(`{{project-name}} handling ${url.pathname}`);
  event.respondWith(
    new Response(`Hello from {{project-name}}! You asked for ${url.pathname}\n`, {
      headers: { "content-type": "text/plain" },
    }),
  );
});
