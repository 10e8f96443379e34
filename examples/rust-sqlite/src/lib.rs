//! A to-do API in Rust with the Spin SDK, on the `default` SQLite database:
//! `GET /todos` lists, `POST /todos` adds the body, `POST /todos/:id/done` marks one done.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::sqlite::{Connection, Value};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut router = Router::new();
    router.get("/todos", list);
    router.post("/todos", add);
    router.post("/todos/:id/done", done);
    Ok(router.handle(req))
}

fn db() -> anyhow::Result<Connection> {
    let db = Connection::open_default()?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)",
        &[],
    )?;
    Ok(db)
}

fn list(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let rows = db()?.execute("SELECT id, title, done FROM todos ORDER BY id", &[])?;
    let mut out = String::new();
    for row in rows.rows() {
        let id: i64 = row.get("id").unwrap_or_default();
        let title: &str = row.get("title").unwrap_or_default();
        let done: i64 = row.get("done").unwrap_or_default();
        out.push_str(&format!("{id}. [{}] {title}\n", if done != 0 { "x" } else { " " }));
    }
    Ok(Response::new(200, out))
}

fn add(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let title = String::from_utf8_lossy(req.body()).trim().to_string();
    if title.is_empty() {
        return Ok(Response::new(400, "send the title as the request body\n"));
    }
    db()?.execute("INSERT INTO todos (title) VALUES (?)", &[Value::Text(title)])?;
    Ok(Response::new(201, "added\n"))
}

fn done(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let id: i64 = params.get("id").and_then(|i| i.parse().ok()).unwrap_or(-1);
    db()?.execute("UPDATE todos SET done = 1 WHERE id = ?", &[Value::Integer(id)])?;
    Ok(Response::new(200, "done\n"))
}
