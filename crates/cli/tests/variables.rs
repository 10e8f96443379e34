//! Component variables reach guests through every interface Spin SDKs use, with the
//! values the manifest and environment give them.

mod support;

use support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "variables"
[variables]
api_host = { default = "example.com" }
api_token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "spin"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[component.spin]
source = "{spin_guest}"
variables = { api_url = "https://{{ api_host }}/v1", token = "{{ api_token }}", plain = "literal" }
[component.spin3]
source = "{spin3_guest}"
variables = { api_url = "https://{{ api_host }}/v3" }
"#;

fn start(env: &[(&str, &str)]) -> (App, Server) {
    let app = App::new(APP);
    // `tessera up` reads variables from its environment: give it one through the CLI helper.
    let mut cmd = tessera();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server::start_with(cmd, app.path(), &[]);
    (app, server)
}

#[test]
fn spin_sdk_variables_and_wasi_config_see_the_same_values() {
    let (_app, server) = start(&[("SPIN_VARIABLE_API_TOKEN", "t0ken"), ("TESSERA_VARIABLE_API_HOST", "api.internal")]);
    let r = server.get("/variables/api_url");
    assert_eq!((r.status, r.body.as_str()), (200, "https://api.internal/v1"));
    assert_eq!(server.get("/variables/token").body, "t0ken");
    assert_eq!(server.get("/variables/plain").body, "literal");
    assert_eq!(server.get("/config/api_url").body, "https://api.internal/v1");
    assert_eq!(server.get("/config").body, "api_url=https://api.internal/v1\nplain=literal\ntoken=t0ken\n");

    // Names the component does not define, and names Spin calls invalid.
    let r = server.get("/variables/nope");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.starts_with("undefined: ") && r.body.contains("nope"), "{}", r.body);
    let r = server.get("/variables/Bad-Name");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(server.get("/config/nope").status, 404);

    // The current SDK (WASI 0.3, spin:variables@3.0.0) sees its own component's values.
    let r = request("GET", &server.url("/v3/variables/api_url"), &[], None);
    assert_eq!((r.status, r.body.as_str()), (200, "https://api.internal/v3"));
    let r = server.get("/v3/variables/token");
    assert_eq!(r.status, 404, "variables are per component: {}", r.body);
    assert!(r.body.starts_with("undefined: "), "{}", r.body);
    assert_eq!(server.get("/v3/variables/Bad-Name").status, 400);

    // The secret never reaches the log.
    assert!(!server.log().contains("t0ken"), "{}", server.log());
}

#[test]
fn defaults_apply_when_the_environment_is_silent() {
    let (_app, server) = start(&[("SPIN_VARIABLE_API_TOKEN", "x")]);
    assert_eq!(server.get("/variables/api_url").body, "https://example.com/v1");
}

#[test]
fn runtime_config_providers_fill_in_what_the_environment_does_not() {
    let app = App::new(APP);
    app.write(".env", "MYAPP_API_HOST=dotenv.example\n");
    app.write(
        "rc.toml",
        "[[variables_provider]]\ntype = \"env\"\nprefix = \"MYAPP\"\ndotenv_path = \".env\"\n[[variables_provider]]\ntype = \"static\"\nvalues = { api_token = \"from-static\" }\n",
    );
    let rc = app.path().join("rc.toml");
    let server = Server::start_with(tessera(), app.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/variables/api_url").body, "https://dotenv.example/v1");
    assert_eq!(server.get("/variables/token").body, "from-static");
}
