//! wasmCloud-style messaging (`wasmcloud:messaging@0.2.0`): `[[trigger.messaging]]`
//! subscriptions and the consumer's publish and request, on the in-process broker and on a
//! real `nats-server`, with publish grants by subject (`allowed_publish_subjects`).

mod support;

use std::time::{Duration, Instant};
use support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "cloud"
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.messaging]]
subject = "greet.>"
component = "worker"
[[trigger.messaging]]
id = "relay"
subject = "relay.*"
component = "worker"
[[trigger.messaging]]
id = "audit"
subject = "relayed.>"
queue_group = "auditors"
component = "auditor"
[component.web]
source = "{cloud_guest}"
allowed_publish_subjects = ["greet.*", "relay.*", "jobs.>"]
[component.worker]
source = "{cloud_guest}"
allowed_publish_subjects = ["relayed.>"]
[component.auditor]
source = "{cloud_guest}"
"#;

fn publish(server: &Server, subject: &str, body: &str) -> Response {
    server.post(&format!("/publish?subject={subject}"), body.as_bytes())
}

/// Waits until `needle` appears `count` times on the server's stdout.
fn wait_for_stdout_count(server: &Server, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stdout.lock().unwrap().matches(needle).count() < count {
        assert!(Instant::now() < deadline, "{count} x `{needle}` never came: {}", server.stdout.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_in_process_broker_carries_requests_replies_and_relays_within_the_grants() {
    let app = App::new(APP);
    let server = app.start_with_runtime_config("request_timeout = \"1s\"\n");
    let banner = server.wait_for_stdout("relayed.>");
    assert!(banner.contains("Messaging subjects:") && banner.contains("in-process greet.>: [worker]"), "{banner}");

    // Request-reply: the worker answers on the reply subject, which needs no grant.
    let reply = server.post("/request?subject=greet.bob", b"hi");
    assert_eq!((reply.status, reply.body.as_str()), (200, "echo: hi"));
    server.wait_for_stdout("[worker] messaging greet.bob: hi");
    server.wait_for_log("messaging greet.bob 2B ok");

    // A relay: web -> relay.order1 -> worker -> relayed.order1 -> auditor.
    assert_eq!(publish(&server, "relay.order1", "paid").status, 200);
    server.wait_for_stdout("[auditor] messaging relayed.order1: paid");

    // Subjects no grant matches are refused with the key to add; wildcards are no subjects.
    let denied = publish(&server, "secret.plans", "x");
    assert_eq!((denied.status, denied.body.as_str()), (403, "publishing to `secret.plans` is not permitted"));
    let log = server.wait_for_log("may not publish to `secret.plans`");
    assert!(log.contains("add \"secret.plans\" (or a pattern such as \"secret.>\") to allowed_publish_subjects in [component.web]"), "{log}");
    let denied = publish(&server, "greet.*", "x");
    assert!(denied.status == 403 && denied.body.contains("wildcard"), "{}", denied.body);
    // Only the reply subject of the message being handled is open, not any inbox.
    assert_eq!(publish(&server, "_INBOX.local.1", "x").status, 403);

    // Nobody subscribed, and nobody answering in time.
    let none = server.post("/request?subject=jobs.none", b"x");
    assert_eq!((none.status, none.body.as_str()), (502, "no subscriber answers requests on `jobs.none`"));
    let late = server.post("/request?subject=greet.slow&timeout=100", b"sleep");
    assert_eq!((late.status, late.body.as_str()), (502, "no reply on `greet.slow` within 100 ms"));

    // Hostile handlers are contained and named in the log; the trigger goes on.
    assert_eq!(publish(&server, "greet.x", "fail").status, 200);
    server.wait_for_log("messaging greet.x 4B handler-error(failing on purpose)");
    publish(&server, "greet.x", "trap");
    let log = server.wait_for_log("messaging greet.x 4B failed");
    assert!(log.contains("trapping on purpose") || log.contains("unreachable"), "{log}");
    publish(&server, "greet.x", "spin");
    server.wait_for_log("component `worker` ran past request_timeout (1s)");
    let reply = server.post("/request?subject=greet.after", b"still here");
    assert_eq!(reply.body, "echo: still here");

    // A flood is all handled.
    for i in 0..100 {
        assert_eq!(publish(&server, "greet.flood", &format!("n{i}")).status, 200);
    }
    wait_for_stdout_count(&server, "messaging greet.flood: n", 100);
}

#[test]
fn over_nats_replicas_share_a_queue_group_and_survive_a_server_restart() {
    let Some(mut nats) = Nats::start() else { return };
    let app = App::new(&APP.replace("subject = \"greet.>\"", "subject = \"greet.>\"\nqueue_group = \"greeters\""));
    let rc = format!("request_timeout = \"1s\"\n[messaging]\ntype = \"nats\"\nurl = \"{}\"\n", nats.url());
    let path = app.runtime_config(&rc);
    let first = app.start(&["--runtime-config-file", path.to_str().unwrap()]);
    let banner = first.wait_for_stdout("relayed.>");
    let shown = format!("nats://{}@127.0.0.1:{} greet.>: [worker]", Nats::USER, nats.port);
    assert!(banner.contains(&shown) && !banner.contains(Nats::PASSWORD), "the password is never shown: {banner}");
    first.wait_for_log("messaging: connected to");
    let second = app.start(&["--runtime-config-file", path.to_str().unwrap()]);
    second.wait_for_log("messaging: connected to");

    // Request-reply through the server.
    let reply = first.post("/request?subject=greet.ann", b"hello");
    assert_eq!((reply.status, reply.body.as_str()), (200, "echo: hello"));

    // The queue group splits messages between the two replicas: each goes to one.
    for i in 0..20 {
        assert_eq!(publish(&first, "greet.q", &format!("m{i}")).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = |s: &Server| s.stdout.lock().unwrap().matches("messaging greet.q: m").count();
    while count(&first) + count(&second) < 20 {
        assert!(Instant::now() < deadline, "not all delivered: {} + {}", count(&first), count(&second));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&first) + count(&second), 20, "each message to one member of the group");
    assert!(count(&first) > 0 && count(&second) > 0, "both replicas took a share");
    drop(second);

    // The server restarts under the running app: no restart of Tessera.
    nats.stop();
    first.wait_for_log("messaging: lost nats://");
    let down = first.post("/request?subject=greet.down&timeout=200", b"x");
    assert!(down.status == 502 && down.body.contains("not connected to nats://"), "{}", down.body);
    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = first.post("/request?subject=greet.back&timeout=500", b"again");
        if reply.status == 200 {
            assert_eq!(reply.body, "echo: again");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after the restart: {}", reply.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_refused_nats_login_fails_requests_with_the_reason() {
    let Some(nats) = Nats::start() else { return };
    let app = App::new(APP);
    let url = nats.url().replace(Nats::PASSWORD, "wrong");
    let server = app.start_with_runtime_config(&format!("[messaging]\ntype = \"nats\"\nurl = \"{url}\"\n"));
    server.wait_for_stdout("relayed.>");
    let failed = server.post("/request?subject=greet.x", b"x");
    assert_eq!(failed.status, 502);
    assert!(failed.body.contains(&format!("not connected to nats://{}@127.0.0.1:{}", Nats::USER, nats.port)), "{}", failed.body);
    let log = server.wait_for_log("authorization");
    assert!(!log.contains("wrong"), "the password is never logged: {log}");
}

#[test]
fn messaging_mistakes_are_load_errors_at_their_place() {
    for (from, to, place, words) in [
        ("subject = \"relay.*\"", "subject = \"relay.>.x\"", "spin.toml:13:11", "`>` before its last token"),
        ("subject = \"relay.*\"\n", "", "spin.toml:11:1", "[[trigger.messaging]] has no `subject`"),
        ("queue_group = \"auditors\"", "queue_group = \"two words\"", "spin.toml:18:15", "queue_group `two words` is empty or has whitespace"),
        ("\"greet.*\", \"relay.*\"", "\"greet. x\"", "spin.toml:22:29", "component.web.allowed_publish_subjects: `greet. x` contains whitespace"),
        ("[component.auditor]\n", "[component.auditor]\nblob_containers = [\"../up\"]\n", "spin.toml:27:20", "component.auditor.blob_containers: container name `../up`"),
    ] {
        let manifest = APP.replace(from, to);
        assert_ne!(manifest, APP, "{from}");
        let app = App::new(&manifest);
        let err = Server::try_start(app.path(), &[]).err().expect("must not start");
        assert!(err.contains(place) && err.contains(words), "{words}: {err}");
    }
    // The broker table of the runtime config.
    for (rc, words) in [
        ("[messaging]\ntype = \"kafka\"\nurl = \"x\"\n", "[messaging] type `kafka` is not a broker Tessera knows"),
        ("[messaging]\ntype = \"nats\"\nurl = \"http://127.0.0.1:4222\"\n", "is not a NATS URL"),
        ("[messaging]\ntype = \"nats\"\n", "[messaging] has no `url`"),
    ] {
        let app = App::new(APP);
        let path = app.runtime_config(rc);
        let err = Server::try_start(app.path(), &["--runtime-config-file", path.to_str().unwrap()]).err().expect("must not start");
        assert!(err.contains("rc.toml:1:1") && err.contains(words), "{words}: {err}");
    }
    // A handler that does not export wasmcloud:messaging/handler.
    let app = App::new(&APP.replacen("source = \"{cloud_guest}\"", "source = \"{http_guest}\"", 2));
    let err = Server::try_start(app.path(), &[]).err().expect("must not start");
    assert!(err.contains("component `worker`") && err.contains("does not export wasmcloud:messaging/handler@0.2.0's handle-message"), "{err}");
}

#[test]
fn tls_urls_verify_the_server_certificate_against_the_system_roots() {
    let Some(nats) = Nats::start_tls() else { return };
    let app = App::new(APP);
    let url = nats.url().replace("nats://", "tls://");
    let path = app.runtime_config(&format!("[messaging]\ntype = \"nats\"\nurl = \"{url}\"\n"));
    // The test CA is not among the system's roots: no connection, and the log says why.
    let untrusting = app.start(&["--runtime-config-file", path.to_str().unwrap()]);
    let r = untrusting.post("/request?subject=greet.x&timeout=1000", b"x");
    assert!(r.status == 502 && r.body.contains("not connected to tls://"), "{}", r.body);
    let log = untrusting.wait_for_log("messaging: tls://");
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    drop(untrusting);
    // With the CA among the roots (SSL_CERT_FILE), requests and replies go over TLS.
    let mut cmd = tessera();
    cmd.env("SSL_CERT_FILE", nats.dir.path().join("ca.pem"));
    let trusting = Server::start_with(cmd, app.path(), &["--runtime-config-file", path.to_str().unwrap()]);
    trusting.wait_for_log("messaging: connected to tls://");
    let reply = trusting.post("/request?subject=greet.tls", b"secret");
    assert_eq!((reply.status, reply.body.as_str()), (200, "echo: secret"));
}
