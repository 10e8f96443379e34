//! HTTP middleware (`dependencies.middleware` on an HTTP trigger, as in Spin): each layer
//! imports and exports `wasi:http/handler@0.3.0`, outermost first, and is denied its
//! parent's capabilities like any dependency.

mod support;

use support::*;

/// `web` (a WASI 0.3 handler) behind two layers of the same middleware, one from a file
/// and one from another component; `/plain/...` serves `web` without them.
const WRAPPED: &str = r#"spin_manifest_version = 2
[application]
name = "wrapped"
[[trigger.http]]
route = "/plain/..."
component = "web"
[[trigger.http]]
route = "/..."
component = "web"
dependencies.middleware = [{ path = "mw.wasm" }, { component = "mw" }]
[component.web]
source = "{p3_guest}"
[component.mw]
source = "{middleware_guest}"
"#;

fn wrapped() -> App {
    let app = App::new(WRAPPED);
    std::fs::copy(guest("middleware_guest.wasm"), app.path().join("mw.wasm")).unwrap();
    app
}

#[test]
fn middleware_wraps_the_handler_outermost_first() {
    let app = wrapped();
    let server = app.start(&[]);
    // The request passes mw1 then mw2; the response comes back through mw2 then mw1.
    let r = server.get("/chain");
    assert_eq!((r.status, r.body.as_str()), (200, "handler saw x-chain=mw1,mw2\n"));
    assert_eq!(r.header("x-chain-response"), Some("mw2, mw1"));
    // A layer may answer itself without calling the next one (an auth refusal).
    let r = request("GET", &server.url("/chain"), &[("x-stop-at", "mw2")], None);
    assert_eq!((r.status, r.body.as_str(), r.header("x-chain-response")), (403, "stopped by mw2\n", Some("mw2, mw1")));
    // The other trigger of the same component has no middleware.
    let r = server.get("/plain/chain");
    assert_eq!((r.status, r.body.as_str(), r.header("x-chain-response")), (200, "handler saw x-chain=\n", None));
    // The wrapped trigger got a component of its own, named in the access log.
    let log = server.wait_for_log("component=web-trigger-2");
    assert!(log.contains("GET /chain 200"), "{log}");
}

#[test]
fn middleware_that_does_not_fit_is_a_load_error_at_its_place() {
    let load_error = |manifest: &str| {
        let app = App::new(manifest);
        std::fs::copy(guest("middleware_guest.wasm"), app.path().join("mw.wasm")).unwrap();
        Server::try_start(app.path(), &[]).err().expect("the app must not load")
    };
    // A WASI 0.2 handler exports no wasi:http/handler@0.3.0 to wrap.
    let e = load_error(&WRAPPED.replace("source = \"{p3_guest}\"", "source = \"{http_guest}\""));
    assert!(e.contains("spin.toml:12:") && e.contains("middleware wraps wasi:http/handler@0.3.0 handlers (WASI 0.3, as in Spin), and the component exports wasi:http/incoming-handler@0.2.12"), "{e}");
    // A layer that is not a middleware (a plain handler imports no next handler).
    let e = load_error(&(WRAPPED.replace("{ component = \"mw\" }", "{ component = \"other\" }") + "[component.other]\nsource = \"{p3_guest}\"\n"));
    assert!(e.contains("spin.toml:10:") && e.contains("middleware[1] is not HTTP middleware: it must import and export wasi:http/handler@0.3.0"), "{e}");
    let e = load_error(&WRAPPED.replace("{ path = \"mw.wasm\" }", "{ path = \"mw.wasm\", export = \"x\" }"));
    assert!(e.contains("spin.toml:10:") && e.contains("trigger.http.dependencies.middleware[0]: a middleware takes no `export`"), "{e}");
    let e = load_error(&WRAPPED.replace("{ component = \"mw\" }", "{ component = \"nope\" }"));
    assert!(e.contains("the middleware[1] of component") && e.contains("the app has no component `nope`"), "{e}");
}

#[test]
fn inspect_shows_the_middleware_chain() {
    let app = wrapped();
    let out = tessera().arg("inspect").arg("-f").arg(app.path()).output().unwrap();
    let text = ok(&out);
    assert!(text.contains("middleware[0] (path mw.wasm) satisfies wasi:http/handler@0.3.0 (wraps middleware[1])"), "{text}");
    assert!(text.contains("middleware[1] (component mw) satisfies wasi:http/handler@0.3.0 (wraps component web-trigger-2)"), "{text}");
    assert!(text.contains("denied: wasi:cli/environment@0.2.6 (inherit_configuration = [\"environment\"] allows it)"), "{text}");
}
