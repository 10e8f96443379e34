//! The users API: `POST /users` with `{"email": "..."}` creates a user, `GET /users/:id`
//! reads one. It keeps nothing itself: every call goes to the `example:users/database`
//! interface, which the Python `db` component implements (composed in at load, so a call
//! is a function call, not a network hop).

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;

// The Spin SQLite WIT only completes the package; this component imports just `database`.
wit_bindgen::generate!({ world: "example:users/api", path: ["wit-spin", "../wit"] });

use example::users::database;

#[http_component]
fn handle(request: Request) -> Response {
    let mut router = Router::new();
    router.post("/users", create_user);
    router.get("/users/:id", get_user);
    router.handle(request)
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
}

fn create_user(request: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    let Ok(new) = serde_json::from_slice::<NewUser>(request.body()) else {
        return Ok(reply(400, json!({ "error": "send {\"email\": \"...\"}" })));
    };
    Ok(match database::create_user(&new.email) {
        Ok(id) => {
            let mut response = reply(201, json!({ "id": id }));
            response.set_header("location", format!("/users/{id}"));
            response
        }
        Err(why) => reply(400, json!({ "error": why })),
    })
}

fn get_user(_: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let Some(id) = params.get("id").and_then(|id| id.parse::<u64>().ok()) else {
        return Ok(reply(400, json!({ "error": "the id is a number" })));
    };
    Ok(match database::get_user(id) {
        Ok(user) => reply(200, json!({ "id": user.id, "email": user.email, "created_at": user.created_at })),
        Err(why) => reply(404, json!({ "error": why })),
    })
}

fn reply(status: u16, body: serde_json::Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(body.to_string()).build()
}
