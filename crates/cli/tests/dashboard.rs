//! The host's dashboard in Debian's headless Chromium, driven by `playwright-core`
//! (tests/dashboard/check.mjs): it asks for the token, shows the deployed apps, its charts
//! move with traffic and it lists failures with their reasons; markup in what it shows
//! stays text.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Node, Chromium and playwright-core, or `None` (skipped loudly outside CI).
fn browser_tools() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/dashboard");
    let missing = [
        (Command::new("node").arg("--version").output().is_err(), "node (apt-get install nodejs npm)"),
        (!Path::new("/usr/bin/chromium").exists(), "chromium (apt-get install chromium)"),
        (!dir.join("node_modules/playwright-core").is_dir(), "playwright-core (cd tests/dashboard && npm ci)"),
    ];
    let missing: Vec<&str> = missing.iter().filter(|(m, _)| *m).map(|(_, what)| *what).collect();
    if missing.is_empty() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the dashboard test needs {}: .ci/run must install them", missing.join(", "));
    }
    eprintln!("SKIPPED: the dashboard test needs {}", missing.join(", "));
    None
}

#[test]
fn the_dashboard_shows_apps_and_charts_that_move_with_traffic() {
    let Some(script_dir) = browser_tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (shop, blog) = (App::new(GUEST_APP), App::new(GUEST_APP));
    // A directory whose name is markup: the page must show it as text.
    let odd = dir.path().join("<img src=x onerror=window.pwned=1>");
    std::fs::create_dir(&odd).unwrap();
    std::fs::copy(shop.path().join("spin.toml"), odd.join("spin.toml")).unwrap();
    let apps = dir.path().join("apps.toml");
    let entry = |name: &str, source: &Path| format!("[[app]]\nname = \"{name}\"\nsource = '{}'\npath_prefix = \"/{name}\"\n\n", source.display());
    std::fs::write(&apps, entry("shop", shop.path()) + &entry("blog", blog.path()) + &entry("odd", &odd)).unwrap();
    let mut cmd = tessera();
    cmd.env("TESSERA_ADMIN_TOKEN", TOKEN);
    let server = Server::host_with(cmd, &apps, &["--state-dir", dir.path().join("state").to_str().unwrap(), "--admin", "127.0.0.1:0"]).unwrap();
    let out = server.wait_for_stdout("Admin API on http://");
    let admin = out.lines().find_map(|l| l.strip_prefix("Admin API on ")).expect("the admin API's address").trim().to_string();

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let run = Command::new("node")
        .arg(script_dir.join("check.mjs"))
        .current_dir(&script_dir)
        .env("ADMIN_URL", &admin)
        .env("ADMIN_TOKEN", TOKEN)
        .env("APP_URL", server.url(""))
        .env("BUSY_APP", "shop")
        .env("IDLE_APP", "blog")
        .env("ODD_SOURCE", odd.display().to_string())
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node");
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{stdout}");
    assert!(run.status.success(), "the dashboard check failed (screenshot: {}):\n{stdout}\n{stderr}\nhost log:\n{}", screenshot.display(), server.stderr.lock().unwrap());
    assert!(stdout.contains("dashboard: every check passed"), "{stdout}");
}
