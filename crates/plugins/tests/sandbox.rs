//! What a plugin may reach, on a Rust plugin (tests/guests/probe-plugin): nothing by
//! default (files, environment, real clocks, network, key-value, variables), each piece
//! when granted; its output kept up to the log quota; loading refused without a trusted
//! signature when the embedder asks for one.

use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_plugins::*;

fn probe_wasm() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests/target/wasm32-wasip2/release/probe_plugin.wasm");
    assert!(path.is_file(), "{} is missing: run scripts/build-guests.sh", path.display());
    path
}

fn host() -> PluginHost {
    PluginHost::new(HostOptions { cache_dir: None, max_instances: 8, ..HostOptions::default() }).unwrap()
}

async fn probe(host: &PluginHost, grants: Grants) -> Plugin {
    host.load(Source::File(probe_wasm()), PluginOptions { grants, ..PluginOptions::default() }).await.unwrap()
}

async fn ask(plugin: &Plugin, call: &str) -> String {
    let called = plugin.call_wave(Call::new(), &format!("tessera:probe/probe@0.1.0#{call}")).await.unwrap_or_else(|e| panic!("{call}: {e}"));
    called.value.join(" ")
}

#[tokio::test]
async fn nothing_is_reachable_by_default() {
    let host = host();
    let plugin = probe(&host, Grants::default()).await;
    let file = ask(&plugin, r#"read-file("/etc/hostname")"#).await;
    assert!(file.starts_with("err("), "a file was read: {file}");
    assert_eq!(ask(&plugin, r#"env("HOME")"#).await, "none");
    // Clocks are fixed: the Unix epoch, and a monotonic clock that does not move.
    assert_eq!(ask(&plugin, "now()").await, "(0, 0)");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connect = ask(&plugin, &format!(r#"connect("{}")"#, listener.local_addr().unwrap())).await;
    assert!(connect.starts_with("err("), "the plugin connected: {connect}");
    assert_eq!(ask(&plugin, r#"kv-roundtrip("k", "v")"#).await, r#"err("Error::AccessDenied")"#);
    let (url, _) = http_server();
    let http = ask(&plugin, &format!(r#"http-get("{url}")"#)).await;
    assert!(http.starts_with("err(") && http.contains("Denied"), "an ungranted request went out: {http}");
    let variable = ask(&plugin, r#"variable("tier")"#).await;
    assert!(variable.starts_with("err("), "{variable}");
}

#[tokio::test]
async fn each_piece_works_when_granted() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rates.txt"), "gold=5").unwrap();
    let (url, requests) = http_server();
    let grants = Grants {
        allowed_outbound_hosts: vec![url.trim_end_matches("/ping").to_string()],
        environment: [("REGION".to_string(), "eu".to_string())].into(),
        files: vec![(dir.path().to_path_buf(), "/config".into())],
        clocks: Clocks::Real,
        key_value_stores: vec!["default".into()],
        variables: [("tier".to_string(), "{{gold}}".to_string())].into(),
        ..Grants::default()
    };
    let tenant = host.tenant("acme", TenantLimits::default()).unwrap();
    let plugin = host
        .load(Source::File(probe_wasm()), PluginOptions { grants: grants.clone(), tenant: Some(tenant.clone()), ..PluginOptions::default() })
        .await
        .unwrap();
    assert_eq!(ask(&plugin, r#"read-file("/config/rates.txt")"#).await, r#"ok("gold=5")"#);
    let outside = ask(&plugin, r#"read-file("/config/../../etc/hostname")"#).await;
    assert!(outside.starts_with("err("), "a granted directory was escaped: {outside}");
    assert_eq!(ask(&plugin, r#"env("REGION")"#).await, r#"some("eu")"#);
    let now = ask(&plugin, "now()").await;
    let secs: u64 = now.trim_matches(['(', ')']).split(", ").next().unwrap().parse().unwrap();
    assert!(secs > 1_700_000_000, "the real clock says {now}");
    assert_eq!(ask(&plugin, r#"kv-roundtrip("k", "v")"#).await, r#"ok("v")"#);
    assert_eq!(ask(&plugin, &format!(r#"http-get("{url}")"#)).await, "ok(204)");
    assert_eq!(requests.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Only the granted destination: another port of the same host is refused.
    let other = ask(&plugin, r#"http-get("http://127.0.0.1:1/ping")"#).await;
    assert!(other.starts_with("err("), "{other}");
    // A value is taken as it is, braces and all.
    assert_eq!(ask(&plugin, r#"variable("tier")"#).await, r#"ok("{{gold}}")"#);
    // Loads by one tenant with the same grants share the compiled code.
    let again = host.load(Source::File(probe_wasm()), PluginOptions { grants, tenant: Some(tenant), ..PluginOptions::default() }).await.unwrap();
    assert!(again.shares_code_with(&plugin));
}

#[tokio::test]
async fn output_is_kept_up_to_the_log_quota_and_the_rest_is_counted() {
    let host = host();
    let plugin = probe(&host, Grants::default()).await;
    let quotas = Quotas { log_size: 100, ..Quotas::DEFAULT };
    let called = plugin.call_wave(Call::new().quotas(quotas), "tessera:probe/probe@0.1.0#shout(30)").await.unwrap();
    assert_eq!(called.logs, Logs { text: format!("{}{}", "x".repeat(30), "y".repeat(30)), dropped: 0 });
    let called = plugin.call_wave(Call::new().quotas(quotas), "tessera:probe/probe@0.1.0#shout(1000)").await.unwrap();
    assert_eq!(called.logs.text, "x".repeat(100));
    assert_eq!(called.logs.dropped, 1900);
}

/// An HTTP server on a free loopback port answering 204 to every request: its URL, and how
/// many requests it answered.
fn http_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ping", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, count)
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen").args(["-t", "ed25519", "-q", "-N", "", "-C", name, "-f"]).arg(&key).output().expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    key
}

#[tokio::test]
async fn a_plugin_must_carry_a_trusted_signature_when_the_embedder_asks() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = keygen(dir.path(), "trusted");
    let stranger = keygen(dir.path(), "stranger");
    let trusted_public = PublicKey::from_file(&dir.path().join("trusted.pub")).unwrap();
    let bytes = std::fs::read(probe_wasm()).unwrap();
    let sign = |key: &Path| match tessera_signing::component::sign(&bytes, &tessera_signing::SecretKey::from_file(key).unwrap()).unwrap() {
        tessera_signing::component::Signed::Embedded(signed) => signed,
        tessera_signing::component::Signed::Detached(_) => unreachable!("ed25519 embeds"),
    };
    let host = host();
    let options = || PluginOptions { trusted_keys: Some(vec![trusted_public.clone()]), ..PluginOptions::default() };

    let plugin = host.load(Source::Bytes(sign(&trusted)), options()).await.unwrap();
    assert_eq!(ask(&plugin, r#"env("X")"#).await, "none");

    let refused = |result: anyhow::Result<Plugin>| format!("{:#}", result.err().expect("refused"));
    let unsigned = refused(host.load(Source::Bytes(bytes.clone()), options()).await);
    assert!(unsigned.contains("is refused: it is not signed"), "{unsigned}");
    let by_stranger = refused(host.load(Source::Bytes(sign(&stranger)), options()).await);
    assert!(by_stranger.contains("not trusted"), "{by_stranger}");
    let mut tampered = sign(&trusted);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = refused(host.load(Source::Bytes(tampered), options()).await);
    assert!(tampered.contains("changed after it was signed"), "{tampered}");
}
