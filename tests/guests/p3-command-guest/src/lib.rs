//! A WASI 0.3 command (`wasi:cli/run@0.3.0`): prints `hello from a WASI 0.3 command` and
//! its arguments; with `fail` as its first argument `run` returns an error.

struct Command;

impl wasip3::exports::cli::run::Guest for Command {
    async fn run() -> Result<(), ()> {
        let args = wasip3::cli::environment::get_arguments();
        let mut out = format!("hello from a WASI 0.3 command\n");
        for a in args.iter().skip(1) {
            out.push_str(a);
            out.push('\n');
        }
        let (mut tx, rx) = wasip3::wit_stream::new();
        let done = wasip3::cli::stdout::write_via_stream(rx);
        let _ = tx.write_all(out.into_bytes()).await;
        drop(tx);
        let _ = done.await;
        if args.get(1).map(String::as_str) == Some("fail") { Err(()) } else { Ok(()) }
    }
}

wasip3::cli::command::export!(Command);
