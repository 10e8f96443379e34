//! MQTT against a real `mosquitto` with a password file: outbound publishing through the
//! Spin SDKs (`fermyon:spin/mqtt@2.0.0`, `spin:mqtt@3.0.0`), allowed only to the brokers in
//! `allowed_outbound_hosts`, and the MQTT trigger (`spin:mqtt-trigger@3.0.0`).

mod support;

use std::time::{Duration, Instant};
use support::*;

fn spin_app(broker: &Mosquitto) -> App {
    App::spin_sdks("mqtt-out", &format!("mqtt://127.0.0.1:{}", broker.port))
}

/// POSTs `payload` to the guest's `/mqtt` route with the broker address and login.
fn publish(server: &Server, path: &str, address: &str, password: &str, payload: &str) -> Response {
    let headers = [("x-mqtt-address", address), ("x-mqtt-user", Mosquitto::USER), ("x-mqtt-password", password)];
    request("POST", &server.url(path), &headers, Some(payload.as_bytes()))
}

#[test]
fn spin_sdk_components_publish_with_each_qos_to_allowed_brokers_only() {
    let Some(broker) = Mosquitto::start() else { return };
    let app = spin_app(&broker);
    let server = app.start(&[]);
    let pets = broker.subscribe("pets/#", "pets/probe");
    let address = format!("{}?client_id=spin-test", broker.url());
    for qos in 0..=2 {
        let r = publish(&server, &format!("/mqtt?topic=pets/cats&qos={qos}"), &address, Mosquitto::PASSWORD, &format!("meow-v2-q{qos}"));
        assert_eq!((r.status, r.body.as_str()), (200, "published 1"), "v2 qos {qos}");
        // A client id left out is made up; SDK 7's async interface.
        let r = publish(&server, &format!("/v3/mqtt?topic=pets/dogs&qos={qos}"), &broker.url(), Mosquitto::PASSWORD, &format!("woof-v3-q{qos}"));
        assert_eq!((r.status, r.body.as_str()), (200, "published 1"), "v3 qos {qos}");
    }
    let got = pets.wait_for(6);
    for qos in 0..=2 {
        assert!(got.contains(&format!("pets/cats meow-v2-q{qos}")) && got.contains(&format!("pets/dogs woof-v3-q{qos}")), "{got:?}");
    }
    // Many messages on one session, each acknowledged.
    let r = publish(&server, "/mqtt?topic=pets/many&qos=1&n=50", &address, Mosquitto::PASSWORD, "x");
    assert_eq!(r.body, "published 50");
    assert_eq!(pets.wait_for(56).iter().filter(|l| l.as_str() == "pets/many x").count(), 50);

    // A wrong password: the broker refuses the session at open.
    let r = publish(&server, "/mqtt?topic=pets/cats", &address, "wrong", "x");
    assert!(r.status == 502 && r.body.contains("refused the session"), "{} {}", r.status, r.body);
    let r = publish(&server, "/v3/mqtt?topic=pets/cats", &address, "wrong", "x");
    assert!(r.status == 502 && r.body.contains("refused the session"), "{} {}", r.status, r.body);

    // A broker not granted: refused before any connection, the log names the key to add.
    let other = format!("mqtt://127.0.0.1:{}", free_port());
    for route in ["/mqtt?topic=t", "/v3/mqtt?topic=t"] {
        let r = publish(&server, route, &other, Mosquitto::PASSWORD, "x");
        assert_eq!((r.status, r.body.as_str()), (502, format!("connection-failed: address {other} is not permitted").as_str()), "{route}");
    }
    let log = server.wait_for_log("may not connect to mqtt://");
    assert!(log.contains(&format!("add \"{other}\" to allowed_outbound_hosts in [component.v2]")), "{log}");
    // A name resolving to loopback is refused unless a pattern names it.
    let r = publish(&server, "/mqtt?topic=t", &format!("mqtt://localhost:{}", broker.port), Mosquitto::PASSWORD, "x");
    assert_eq!(r.status, 502, "{}", r.body);

    // Bad input gets the interface's own errors.
    assert_eq!(publish(&server, "/mqtt?topic=t", "http://127.0.0.1:1", "", "x").body, "invalid-address");
    let r = publish(&server, "/mqtt?topic=pets/+", &address, Mosquitto::PASSWORD, "x");
    let r2 = publish(&server, "/v3/mqtt?topic=", &broker.url(), Mosquitto::PASSWORD, "x");
    assert!(r.status == 500 && r.body.contains("not a topic to publish to"), "{}", r.body);
    assert!(r2.status == 500 && r2.body.contains("not a topic to publish to: it is empty"), "{}", r2.body);
    let r = publish(&server, "/mqtt?topic=t&conns=17", &broker.url(), Mosquitto::PASSWORD, "x");
    assert_eq!((r.status, r.body.as_str()), (429, "too-many-connections"));
    server.wait_for_log("more than 16 MQTT sessions");
    drop(pets);

    // The broker goes down: an error within seconds; back up: publishing works again
    // without restarting Tessera.
    let mut broker = broker;
    broker.stop();
    let started = Instant::now();
    let r = publish(&server, "/v3/mqtt?topic=pets/cats&qos=1", &address, Mosquitto::PASSWORD, "down");
    assert!(r.status == 502 && r.body.contains("cannot connect"), "{} {}", r.status, r.body);
    assert!(started.elapsed() < Duration::from_secs(8));
    broker.restart();
    let pets = broker.subscribe("pets/#", "pets/probe");
    let r = publish(&server, "/v3/mqtt?topic=pets/cats&qos=2", &address, Mosquitto::PASSWORD, "back");
    assert_eq!(r.body, "published 1");
    assert!(pets.wait_for(1).contains(&"pets/cats back".to_string()));
}

fn trigger_app(broker: &Mosquitto, broker_table: &str) -> App {
    App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "mqtt-in"
[application.trigger.mqtt]
{broker_table}
[[trigger.mqtt]]
component = "sensors"
topic = "sensors/+/temperature"
qos = "1"
[[trigger.mqtt]]
id = "alerts"
component = "alerts"
topic = "{{{{ alert_topic }}}}"
qos = 0
[variables]
alert_topic = {{ default = "alerts/#" }}
mqtt_password = {{ default = "{password}" }}
[component.sensors]
source = "{{mqtt_guest}}"
[component.alerts]
source = "{{mqtt_guest}}"
"#,
        broker_table = broker_table.replace("PORT", &broker.port.to_string()),
        password = Mosquitto::PASSWORD,
    ))
}

const BROKER: &str = r#"address = "mqtt://127.0.0.1:PORT"
username = "tessera"
password = "{{ mqtt_password }}"
keep_alive_interval = "30""#;

#[test]
fn the_mqtt_trigger_delivers_each_message_to_the_matching_components_and_survives_a_broker_restart() {
    let Some(mut broker) = Mosquitto::start() else { return };
    let app = trigger_app(&broker, BROKER);
    let server = app.start_with_runtime_config("request_timeout = \"1s\"\n");
    let banner = server.wait_for_stdout("alerts/#");
    assert!(banner.contains("MQTT topics:") && banner.contains("sensors/+/temperature: [sensors]"), "{banner}");
    server.wait_for_log("MQTT trigger: subscribed to 2 topic(s)");

    broker.publish("sensors/kitchen/temperature", "21.5", 1);
    broker.publish("alerts/fire", "smoke", 0);
    broker.publish("sensors/kitchen/humidity", "40", 1);
    server.wait_for_stdout("mqtt alerts/fire: smoke");
    let out = server.wait_for_stdout("mqtt sensors/kitchen/temperature: 21.5");
    assert!(!out.contains("humidity"), "a topic no filter matches reaches no component: {out}");
    let log = server.wait_for_log("mqtt alerts/fire 5B ok");
    assert!(log.contains("mqtt sensors/kitchen/temperature 4B ok") && log.contains("component=sensors"), "{log}");

    // Hostile handlers are contained and named; the trigger goes on.
    broker.publish("alerts/x", "fail", 0);
    server.wait_for_log("handler-error(");
    broker.publish("alerts/x", "trap", 0);
    let log = server.wait_for_log("mqtt alerts/x 4B failed");
    assert!(log.contains("trapping on purpose") || log.contains("unreachable"), "{log}");
    broker.publish("alerts/x", "spin", 0);
    let log = server.wait_for_log("ran past request_timeout (1s)");
    assert!(log.contains("component `alerts` ran past request_timeout (1s)"), "{log}");
    broker.publish("alerts/x", "still-here", 0);
    server.wait_for_stdout("mqtt alerts/x: still-here");

    // A flood is all handled, at most MAX_IN_FLIGHT at once.
    for i in 0..100 {
        broker.publish("sensors/hall/temperature", &format!("n{i}"), 1);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stdout.lock().unwrap().matches("mqtt sensors/hall/temperature: n").count() < 100 {
        assert!(Instant::now() < deadline, "flood not handled: {}", server.stdout.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }

    // The broker restarts under the running app: the trigger reconnects, subscribes again.
    broker.stop();
    server.wait_for_log("reconnecting to mqtt://127.0.0.1");
    broker.restart();
    server.wait_for_log("subscribed again");
    broker.publish("sensors/porch/temperature", "3.0", 1);
    server.wait_for_stdout("mqtt sensors/porch/temperature: 3.0");
}

#[test]
fn a_refused_login_is_logged_with_the_keys_to_fix() {
    let Some(broker) = Mosquitto::start() else { return };
    let app = trigger_app(&broker, &BROKER.replace("{{ mqtt_password }}", "wrong"));
    let server = app.start(&[]);
    let log = server.wait_for_log("refused the session");
    assert!(log.contains("check username and password in [application.trigger.mqtt]"), "{log}");
}

#[test]
fn mqtt_trigger_mistakes_are_load_errors_at_their_place() {
    let Some(broker) = Mosquitto::start() else { return };
    let cases = [
        // (what to change in the manifest, expected place, expected words)
        (BROKER.replace("keep_alive_interval = \"30\"", "keep_alive_interval = \"soon\""), "spin.toml:9:23", "not a number of seconds"),
        (BROKER.replace("mqtt://", "http://"), "spin.toml:6:11", "not an mqtt:// URL"),
    ];
    for (table, place, words) in cases {
        let app = trigger_app(&broker, &table);
        let err = Server::try_start(app.path(), &[]).err().expect("must not start");
        assert!(err.contains(place) && err.contains(words), "{words}: {err}");
    }
    let app = trigger_app(&broker, BROKER);
    let manifest = std::fs::read_to_string(app.path().join("spin.toml")).unwrap();
    for (from, to, place, words) in [
        ("qos = \"1\"", "qos = \"3\"", "spin.toml:13:7", "not an MQTT QoS"),
        ("sensors/+/temperature", "sensors/#/temperature", "spin.toml:10:1", "not an MQTT topic filter"),
        ("source = \"", "source = \"/nonexistent/", "", ""),
    ] {
        if from.starts_with("source") {
            // A component that is not an MQTT component.
            let web = manifest.replacen(&guest("mqtt_guest.wasm").display().to_string(), &guest("http_guest.wasm").display().to_string(), 1);
            std::fs::write(app.path().join("spin.toml"), web).unwrap();
            let err = Server::try_start(app.path(), &[]).err().expect("must not start");
            assert!(err.contains("component `sensors`") && err.contains("does not export spin:mqtt-trigger@3.0.0's handle-message"), "{err}");
            continue;
        }
        std::fs::write(app.path().join("spin.toml"), manifest.replace(from, to)).unwrap();
        let err = Server::try_start(app.path(), &[]).err().expect("must not start");
        assert!(err.contains(place) && err.contains(words), "{words}: {err}");
    }
    let no_broker = App::new("spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.mqtt]]\ntopic = \"t\"\ncomponent = \"c\"\n[component.c]\nsource = \"{mqtt_guest}\"\n");
    let err = Server::try_start(no_broker.path(), &[]).err().expect("must not start");
    assert!(err.contains("spin.toml:4:1") && err.contains("[application.trigger.mqtt]"), "{err}");
}

#[test]
fn a_payload_over_16_mib_is_refused_and_one_under_it_is_delivered() {
    let Some(broker) = Mosquitto::start() else { return };
    let app = spin_app(&broker);
    let server = app.start_with_runtime_config("max_request_body_size = \"20MiB\"\nmax_instance_memory = \"256MiB\"\n");
    let pets = broker.subscribe("pets/#", "pets/probe");
    let limit = 16 << 20;
    let over = "x".repeat(limit + 1);
    let r = publish(&server, "/mqtt?topic=pets/big&qos=1", &broker.url(), Mosquitto::PASSWORD, &over);
    assert!(r.status == 500 && r.body.contains(&format!("payload of {} bytes is over the limit of {limit} bytes", limit + 1)), "{} {}", r.status, &r.body[..r.body.len().min(300)]);
    // Just under the limit (leaving room for the packet's header) goes through, acknowledged.
    let under = "y".repeat(limit - 1024);
    let r = publish(&server, "/v3/mqtt?topic=pets/big&qos=1", &broker.url(), Mosquitto::PASSWORD, &under);
    assert_eq!((r.status, r.body.as_str()), (200, "published 1"));
    assert!(pets.wait_for(1).iter().any(|l| l.starts_with("pets/big yyyy")));
}

#[test]
fn mqtts_verifies_the_broker_certificate_against_the_system_roots() {
    let Some(broker) = Mosquitto::start_tls() else { return };
    let tls_port = broker.tls_port.unwrap();
    let app = App::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"tls\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"v2\"\n[component.v2]\nsource = \"{{spin_guest}}\"\nallowed_outbound_hosts = [\"mqtts://127.0.0.1:{tls_port}\"]\n"
    ));
    let pets = broker.subscribe("pets/#", "pets/probe");
    let address = format!("mqtts://127.0.0.1:{tls_port}");
    // The test CA is not among the system's roots: the handshake fails on the certificate.
    let untrusting = app.start(&[]);
    let r = publish(&untrusting, "/mqtt?topic=pets/tls&qos=1", &address, Mosquitto::PASSWORD, "x");
    assert!(r.status == 502 && r.body.to_lowercase().contains("certificate"), "{} {}", r.status, r.body);
    drop(untrusting);
    // With the CA added the way the system's roots are read (SSL_CERT_FILE), it goes through.
    let mut cmd = tessera();
    cmd.env("SSL_CERT_FILE", broker.dir.path().join("ca.pem"));
    let trusting = Server::start_with(cmd, app.path(), &[]);
    let r = publish(&trusting, "/mqtt?topic=pets/tls&qos=1", &address, Mosquitto::PASSWORD, "over tls");
    assert_eq!((r.status, r.body.as_str()), (200, "published 1"));
    assert!(pets.wait_for(1).contains(&"pets/tls over tls".to_string()));
}
