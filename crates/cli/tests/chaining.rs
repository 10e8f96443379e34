//! Service chaining end to end: `http://<id>.spin.internal` and relative URLs reach the
//! app's own components in process, with the callee's grants, only when
//! `allowed_outbound_hosts` allows it; a component calling itself stops at
//! `max_chain_depth`.

mod support;

use support::*;

/// `front` may call `back` (a private component, so no socket reaches it) and the app's
/// own routes; `open` is routed publicly; `back` and `open` have environments of their own.
const CHAINED: &str = r#"spin_manifest_version = 2
[application]
name = "chained"
[[trigger.http]]
route = "/front/..."
component = "front"
[[trigger.http]]
route = { private = true }
component = "back"
[[trigger.http]]
route = "/open/..."
component = "open"
[[trigger.http]]
route = "/loop"
component = "looper"
[component.front]
source = "{http_guest}"
environment = { WHO = "front" }
allowed_outbound_hosts = ["http://back.spin.internal", "http://self"]
[component.back]
source = "{http_guest}"
environment = { WHO = "back" }
[component.open]
source = "{http_guest}"
environment = { WHO = "open" }
[component.looper]
source = "{http_guest}"
allowed_outbound_hosts = ["http://self"]
"#;

#[test]
fn a_component_calls_another_in_process_with_the_callee_s_grants() {
    let app = App::new(CHAINED);
    let server = app.start(&[]);
    // The private component answers, and with its own environment, not the caller's.
    let r = server.get("/front/outbound?url=http://back.spin.internal/hello");
    assert_eq!((r.status, r.body.as_str(), r.header("x-upstream-status")), (200, "Hello from Tessera\n", Some("200")));
    let env = server.get("/front/outbound?url=http://back.spin.internal/env").body;
    assert!(env.contains("WHO=back\n") && !env.contains("WHO=front"), "{env}");
    // Spin's headers for a chained request: the whole path is the wildcard part.
    let headers = server.get("/front/outbound?url=http://back.spin.internal/x/headers").body;
    assert!(headers.contains("spin-path-info: /x/headers\n"), "{headers}");
    assert!(headers.contains("spin-full-url: http://back.spin.internal/x/headers\n"), "{headers}");
    assert!(headers.contains("spin-client-addr: 0.0.0.0:0\n"), "{headers}");
    // The chained request has an access-log line of its own, naming the callee.
    let log = server.wait_for_log("component=back");
    assert!(log.lines().any(|l| l.contains("GET /hello 200") && l.contains("component=back")), "{log}");

    // A relative URL goes through the app's routes (`http://self`), as a client would.
    let env = server.get("/front/outbound?url=/open/env").body;
    assert!(env.contains("WHO=open\n"), "{env}");
    let r = server.get("/front/outbound?url=/nowhere");
    assert_eq!((r.status, r.header("x-upstream-status")), (200, Some("404")));

    // No socket serves the private component.
    assert_eq!(server.get("/back/hello").status, 404);
}

#[test]
fn chaining_without_the_grant_is_refused_and_the_log_says_how_to_allow_it() {
    let app = App::new(CHAINED);
    let server = app.start(&[]);
    let r = server.get("/front/outbound?url=http://open.spin.internal/hello");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    let log = server.wait_for_log("may not call http://open.spin.internal");
    assert!(
        log.contains("component `front` may not call http://open.spin.internal (service chaining); to allow it, add \"http://open.spin.internal\" to allowed_outbound_hosts in [component.front]"),
        "{log}"
    );
    // `open` has no grant at all: neither the app's routes nor other components.
    let r = server.get("/open/outbound?url=/front/hello");
    assert!(r.status == 502 && r.body.contains("HttpRequestDenied"), "{} {}", r.status, r.body);
    let r = server.get("/open/outbound?url=http://back.spin.internal/hello");
    assert!(r.status == 502 && r.body.contains("HttpRequestDenied"), "{} {}", r.status, r.body);
    server.wait_for_log("component `open` may not call http://self");
}

#[test]
fn a_component_calling_itself_stops_at_max_chain_depth() {
    let app = App::new(CHAINED);
    let server = app.start_with_runtime_config("max_chain_depth = 4\n");
    let r = server.get("/loop");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("LoopDetected"), "{}", r.body);
    let log = server.wait_for_log("over max_chain_depth");
    assert!(log.contains("is the 5th service-chaining hop in a row, over max_chain_depth (4)"), "{log}");
    // Five instances ran (the client's and four hops), each with an access-log line; the client's
    // line is written after its response is sent, so it is waited for.
    let lines = server.wait_for_log_lines("GET /loop 502", 5);
    assert_eq!(lines, 5, "{}", server.log());
    // The host goes on serving.
    assert_eq!(server.get("/front/hello").status, 200);
}

#[test]
fn a_chaining_pattern_naming_no_http_component_is_a_load_error() {
    for (pattern, expected, hint) in [
        ("http://nope.spin.internal", "names no HTTP component of this app", "service chaining reaches the app's HTTP components: back, front, looper, open"),
        ("http://lib.spin.internal", "names no HTTP component of this app", "component `lib` has no [[trigger.http]]"),
    ] {
        let manifest = CHAINED.replace("\"http://back.spin.internal\"", &format!("\"{pattern}\"")) + "[component.lib]\nsource = \"{http_guest}\"\n";
        let app = App::new(&manifest);
        let err = Server::try_start(app.path(), &[]).err().expect("the app must not load");
        assert!(err.contains("spin.toml:19:") && err.contains(expected) && err.contains(hint), "{pattern}: {err}");
    }
}
