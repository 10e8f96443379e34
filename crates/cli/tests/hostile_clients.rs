//! The hostile-client suite: clients that attack the HTTP listener. The host must stay up,
//! bounded in memory, answer attacks with a clear status or close them, and keep serving
//! well-behaved clients. Run with `--nocapture` for the figures docs/security.md reports.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

fn start(rc: &str) -> (App, Server) {
    let app = App::new(GUEST_APP);
    let server = app.start_with_runtime_config(rc);
    (app, server)
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (or `wait`
/// passes with it open, shown as `<open>`).
fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                out.extend_from_slice(b"<open>");
                break;
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn oversized_and_too_many_headers_get_431() {
    let (_app, server) = start("max_request_header_size = \"16KiB\"\nmax_request_headers = 20\n");
    let big = format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 << 10));
    assert_eq!(status_of(&exchange(server.addr, big.as_bytes(), Duration::from_secs(5))), 431);
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /hello HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(status_of(&exchange(server.addr, many.as_bytes(), Duration::from_secs(5))), 431);
    // An endless header section is cut off at the buffer, not buffered without end.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Endless: ").unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0usize;
    while sent < 64 << 20 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(sent < 64 << 20, "the host kept reading a 64 MiB header line");
    let fine: String = (0..15).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fine = format!("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fine}\r\n");
    assert_eq!(status_of(&exchange(server.addr, fine.as_bytes(), Duration::from_secs(5))), 200);
}

#[test]
fn slow_headers_are_cut_off_at_header_read_timeout() {
    let (_app, server) = start("header_read_timeout = \"2s\"\n");
    // 200 slowloris clients, each sending a header byte every 300 ms.
    let started = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let start = Instant::now();
                for b in b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
                    if s.write_all(&[*b]).is_err() || start.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                start.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(server.get("/hello").status, 200, "well-behaved clients are served during the attack");
    let served_in = t.elapsed();
    let cut: Vec<Duration> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let slowest = cut.iter().max().unwrap();
    assert!(*slowest < Duration::from_secs(5), "a slowloris client stayed {slowest:?} with header_read_timeout 2s");
    println!("slow headers: 200 clients cut off after at most {slowest:?} (header_read_timeout 2s); a well-behaved request took {served_in:?} meanwhile; total {:?}", started.elapsed());
}

#[test]
fn idle_keep_alive_connections_are_closed_at_header_read_timeout() {
    let (_app, server) = start("header_read_timeout = \"1s\"\n");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(4), "closed after {:?}", t.elapsed());
}

#[test]
fn a_slow_request_body_gets_408_at_request_timeout() {
    let (_app, server) = start("request_timeout = \"2s\"\n");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").unwrap();
    let t = Instant::now();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..100 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(status_of(&text), 408, "{text}");
    assert!(text.contains("the request body did not arrive within request_timeout (2s)"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(s);
    writer.join().unwrap();
    assert!(server.wait_for_log("did not send the request body within request_timeout").contains("answered 408"));
}

#[test]
fn request_smuggling_attempts_never_reach_a_second_route() {
    let (_app, server) = start("");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let attempts: [(&str, String); 7] = [
        ("CL then TE", format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE then CL", format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n{smuggled}")),
        ("two lengths", format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd{smuggled}")),
        ("chunked not last", format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}")),
        ("unknown coding with CL", format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nabcd{smuggled}")),
        ("space before colon", format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("chunk size overflow", format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff1\r\nabc\r\n0\r\n\r\n{smuggled}")),
    ];
    for (name, bytes) in &attempts {
        let response = exchange(server.addr, bytes.as_bytes(), Duration::from_secs(3));
        let status = status_of(&response);
        if name.contains("CL") {
            // Both framing headers: 400 and closed, in either order (as Envoy answers).
            assert_eq!(status, 400, "{name}: {response}");
        }
        assert!(status == 400 || status == 200, "{name}: {response}");
        assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{name}: one response, the connection closed: {response}");
        assert!(!response.ends_with("<open>"), "{name}: the connection must be closed after an ambiguous message: {response}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(!server.log().contains("/smuggled"), "a smuggled request was served: {}", server.log());
    println!("smuggling: {} attempts, none reached a second route", attempts.len());

    // On a kept-alive connection, the request with both headers is the one refused.
    let pipelined = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let response = exchange(server.addr, pipelined.as_bytes(), Duration::from_secs(3));
    let statuses: Vec<&str> = response.match_indices("HTTP/1.1 ").map(|(i, _)| &response[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "200", "400"], "{response}");
    assert!(response.contains("a request may not have both Content-Length and Transfer-Encoding") && !response.ends_with("<open>"), "{response}");
}

#[test]
fn invalid_bytes_and_methods_get_400_and_the_host_stays_up() {
    let (_app, mut server) = start("");
    let bad: [(&str, &[u8]); 8] = [
        ("invalid UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("invalid method", b"G@T /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("NUL in method", b"GE\x00T /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("HTTP/0.9", b"GET /\r\n\r\n"),
        ("obsolete line folding", b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
        ("NUL in header", b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
        ("bad version", b"GET /hello HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello to a plain port\r\n\r\n"),
    ];
    for (name, bytes) in bad {
        let response = exchange(server.addr, bytes, Duration::from_secs(3));
        assert_eq!(status_of(&response), 400, "{name}: {response}");
    }
    // Bytes that are not UTF-8 in a header value reach the guest, replaced, not a crash.
    let response = exchange(server.addr, b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Bad: \xff\xfe\r\n\r\n", Duration::from_secs(3));
    assert_eq!(status_of(&response), 200, "{response}");
    // An unknown but well-formed method is passed to the component, as in Spin.
    let response = exchange(server.addr, b"FROB /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Duration::from_secs(3));
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(server.is_running());
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn ten_thousand_idle_connections_stay_bounded_and_are_closed() {
    const IDLE: usize = 10_000;
    let wanted = (IDLE + 1000) as u64;
    let limit = rlimit::increase_nofile_limit(wanted).unwrap_or(0);
    if limit < wanted {
        assert!(std::env::var_os("CI").is_none(), "CI must allow {wanted} open files (ulimit -n)");
        eprintln!("SKIPPED: the open-file limit is {limit}, {IDLE} connections need {wanted}");
        return;
    }
    let (_app, mut server) = start("header_read_timeout = \"5s\"\n");
    // Warm up: one request of each kind, so the baseline includes the instance pool.
    assert_eq!(server.get("/hello").status, 200);
    let before = server.rss_kib();
    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(server.addr).unwrap());
    }
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(server.get("/hello").status, 200, "a well-behaved client is served beside {IDLE} idle connections");
    let served_in = t.elapsed();
    let during = server.rss_kib();
    let growth_kib = during.saturating_sub(before);
    println!(
        "idle connections: {IDLE} opened in {opened_in:?}; resident memory {} MiB -> {} MiB (+{:.1} KiB each); a request took {served_in:?} meanwhile",
        before / 1024,
        during / 1024,
        growth_kib as f64 / IDLE as f64
    );
    assert!(growth_kib < 200 * 1024, "{IDLE} idle connections grew the host by {growth_kib} KiB");
    // All are closed by the host once header_read_timeout passes.
    std::thread::sleep(Duration::from_secs(6) - started.elapsed().min(Duration::from_secs(6)) + Duration::from_secs(1));
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 1];
        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(closed, IDLE, "every idle connection is closed after header_read_timeout");
    assert!(server.is_running());
    assert_eq!(server.get("/hello").status, 200);
}
