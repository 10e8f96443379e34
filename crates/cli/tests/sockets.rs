//! `wasi:sockets` under `tessera up`, as Spin grants it: TCP and UDP only to what `tcp://`
//! and `udp://` entries of `allowed_outbound_hosts` allow (IPs, CIDR ranges, port ranges,
//! `*`, variables), loopback and private addresses only when a pattern names them,
//! listening refused, each refusal logged with the entry to add.

mod support;

use std::io::Read as _;
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

fn app(allowed: &str) -> App {
    App::new(&GUEST_APP.replace("source = \"{http_guest}\"", &format!("source = \"{{http_guest}}\"\nallowed_outbound_hosts = {allowed}")))
}

/// A TCP server on a free loopback port counting the `ping`s it gets.
fn tcp_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pings = Arc::new(AtomicUsize::new(0));
    let counter = pings.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4];
            if stream.read_exact(&mut buf).is_ok() && &buf == b"ping" {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (port, pings)
}

#[test]
fn tcp_goes_only_where_a_pattern_allows() {
    let (port, pings) = tcp_server();
    let (other_port, other_pings) = tcp_server();
    let server = app(&format!(r#"["tcp://127.0.0.1:{port}"]"#)).start(&[]);
    let r = server.get(&format!("/connect?addr=127.0.0.1:{port}"));
    assert_eq!((r.status, r.body.as_str()), (200, "connected\n"));
    let r = server.get(&format!("/connect?addr=127.0.0.1:{other_port}"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.to_lowercase().contains("denied") || r.body.contains("permission"), "{}", r.body);
    server.wait_for_log(&format!(r#"to allow it, add "tcp://127.0.0.1:{other_port}" to allowed_outbound_hosts in [component.guest]"#));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!((pings.load(Ordering::Relaxed), other_pings.load(Ordering::Relaxed)), (1, 0));
}

#[test]
fn names_resolve_only_when_a_grant_names_them() {
    let (port, pings) = tcp_server();
    let (other_port, other_pings) = tcp_server();
    // `localhost` is named by the grant, which also names loopback for it.
    let server = app(&format!(r#"["tcp://localhost:{port}"]"#)).start(&[]);
    let r = server.get(&format!("/connect?addr=localhost:{port}"));
    assert_eq!((r.status, r.body.as_str()), (200, "connected\n"));
    // The name resolves, but the grant is for one port only.
    let r = server.get(&format!("/connect?addr=localhost:{other_port}"));
    assert_eq!(r.status, 403, "{}", r.body);
    server.wait_for_log(&format!("may not connect to tcp://127.0.0.1:{other_port}"));
    // An address grant does not let the guest resolve names: Spin refuses every lookup.
    let by_address = app(&format!(r#"["tcp://127.0.0.1:{port}"]"#)).start(&[]);
    let r = by_address.get(&format!("/connect?addr=localhost:{port}"));
    assert_eq!(r.status, 403, "{}", r.body);
    let log = by_address.wait_for_log("may not look up `localhost`");
    assert!(log.contains(r#"to allow it, add "tcp://localhost:PORT" to allowed_outbound_hosts in [component.guest]"#), "{log}");
    // Nothing granted: no lookups at all.
    let closed = App::new(GUEST_APP).start(&[]);
    assert_eq!(closed.get(&format!("/connect?addr=localhost:{port}")).status, 403);
    closed.wait_for_log(r#"no TCP or UDP grant tried to look up `localhost`; to allow it, add "tcp://localhost:PORT""#);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!((pings.load(Ordering::Relaxed), other_pings.load(Ordering::Relaxed)), (1, 0));
}

#[test]
fn ranges_wildcards_and_variables_match_as_in_spin() {
    let (port, pings) = tcp_server();
    let manifest = GUEST_APP.replace("source = \"{http_guest}\"", "source = \"{http_guest}\"\nallowed_outbound_hosts = [\"tcp://{{ net }}/{{ len }}:1..65535\"]")
        + "[variables]\nnet = { default = \"127.0.0.0\" }\nlen = { default = \"24\" }\n";
    let server = App::new(&manifest).start(&[]);
    assert_eq!(server.get(&format!("/connect?addr=127.0.0.1:{port}")).status, 200);
    // A pattern that does not name loopback reaches public addresses only.
    let anywhere = app(r#"["tcp://*:*"]"#).start(&[]);
    let r = anywhere.get(&format!("/connect?addr=127.0.0.1:{port}"));
    assert_eq!(r.status, 403, "{}", r.body);
    anywhere.wait_for_log("a non-public address no pattern names");
    assert_eq!(pings.load(Ordering::Relaxed), 1);
}

#[test]
fn udp_needs_a_udp_pattern_and_listening_is_refused() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let addr = socket.local_addr().unwrap();
    let tcp_only = app(&format!(r#"["tcp://127.0.0.1:{}"]"#, addr.port())).start(&[]);
    assert_eq!(tcp_only.get(&format!("/udp?addr={addr}")).status, 403);
    let server = app(&format!(r#"["udp://127.0.0.1:{}", "tcp://*:*"]"#, addr.port())).start(&[]);
    let r = server.get(&format!("/udp?addr={addr}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut buf = [0u8; 16];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let r = server.get("/listen");
    assert_eq!(r.status, 403, "{}", r.body);
    server.wait_for_log("listening sockets are refused");
}

#[test]
fn without_a_socket_pattern_there_are_no_sockets() {
    let (port, pings) = tcp_server();
    let server = app(r#"["https://example.com"]"#).start(&[]);
    assert_eq!(server.get(&format!("/connect?addr=127.0.0.1:{port}")).status, 403);
    assert_eq!(pings.load(Ordering::Relaxed), 0);
}

#[test]
fn wasi_0_3_sockets_get_the_same_check() {
    let (port, _) = tcp_server();
    let (other_port, _) = tcp_server();
    let manifest = GUEST_APP.replace("source = \"{http_guest}\"", &format!("source = \"{{p3_guest}}\"\nallowed_outbound_hosts = [\"tcp://127.0.0.1:{port}\"]"));
    let server = App::new(&manifest).start(&[]);
    assert_eq!(server.get(&format!("/connect?port={port}")).body, "connected\n");
    let r = server.get(&format!("/connect?port={other_port}"));
    assert_eq!(r.body, "refused: ErrorCode::AccessDenied\n");
    server.wait_for_log(&format!(r#"add "tcp://127.0.0.1:{other_port}" to allowed_outbound_hosts in [component.guest]"#));
    // Nothing granted: no socket at all.
    let closed = App::new(&GUEST_APP.replace("{http_guest}", "{p3_guest}")).start(&[]);
    assert!(closed.get(&format!("/connect?port={port}")).body.starts_with("refused: "), "sockets are off without a grant");
}

#[test]
fn wasi_0_3_name_lookups_resolve_only_granted_names() {
    let manifest = |allowed: &str| GUEST_APP.replace("source = \"{http_guest}\"", &format!("source = \"{{p3_guest}}\"\nallowed_outbound_hosts = {allowed}"));
    let named = App::new(&manifest(r#"["tcp://localhost:5432"]"#)).start(&[]);
    let r = named.get("/lookup?name=localhost");
    assert!(r.body.starts_with("resolved ") && r.body.contains("127.0.0.1"), "{}", r.body);
    // An IP address needs no lookup.
    assert_eq!(named.get("/lookup?name=10.1.2.3").body, "resolved 10.1.2.3\n");
    let by_address = App::new(&manifest(r#"["tcp://127.0.0.1:5432"]"#)).start(&[]);
    assert_eq!(by_address.get("/lookup?name=localhost").body, "refused: ErrorCode::AccessDenied\n");
    by_address.wait_for_log("may not look up `localhost`");
    let closed = App::new(&GUEST_APP.replace("{http_guest}", "{p3_guest}")).start(&[]);
    assert_eq!(closed.get("/lookup?name=localhost").body, "refused: ErrorCode::AccessDenied\n");
}
