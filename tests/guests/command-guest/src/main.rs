//! A command for `tessera run` and `[[trigger.command]]` tests; argv[1] picks what it does:
//!
//! - `hello [ARGS...]`: prints `hello from a command` and then each argument on a line;
//! - `env NAME`: prints NAME's value (or `unset`);
//! - `env-count`: prints how many environment variables it sees;
//! - `cat PATH`: prints the file; `ls PATH`: its entries; errors go to stderr, exit 2;
//! - `write PATH TEXT`: writes the file (exit 2 on error, the error on stderr);
//! - `stdin`: copies stdin to stdout;
//! - `exit N`: exits with N (`exit-with-code`); `exit-std N`: `std::process::exit(N)`;
//!   `fail`: `main` returns an error (exit 1);
//! - `panic`, `loop`, `alloc`, `recurse`, `flood`: trap, spin, allocate, recurse and write
//!   to stdout without end;
//! - `tcp HOST:PORT`: connects, prints `connected` (or the error, exit 3);
//! - `http URL`: a GET through `wasi:http/outgoing-handler`, prints the status (or the
//!   error, exit 3).

use std::io::{Read, Write};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("hello");
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match mode {
        "hello" => {
            println!("hello from a command");
            for a in &args[2.min(args.len())..] {
                println!("{a}");
            }
            println!("argv0={}", arg(0));
        }
        "env" => println!("{}", std::env::var(arg(2)).unwrap_or_else(|_| "unset".into())),
        "env-count" => println!("{}", std::env::vars().count()),
        "cat" => match std::fs::read_to_string(arg(2)) {
            Ok(text) => print!("{text}"),
            Err(e) => fail(2, &format!("cannot read {}: {e}", arg(2))),
        },
        "ls" => match std::fs::read_dir(arg(2)) {
            Ok(entries) => {
                for e in entries.flatten() {
                    println!("{}", e.file_name().to_string_lossy());
                }
            }
            Err(e) => fail(2, &format!("cannot list {}: {e}", arg(2))),
        },
        "write" => {
            if let Err(e) = std::fs::write(arg(2), arg(3)) {
                fail(2, &format!("cannot write {}: {e}", arg(2)));
            }
            println!("wrote {}", arg(2));
        }
        "stdin" => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(|e| e.to_string())?;
            print!("{input}");
        }
        // `wasi:cli/exit.exit-with-code` (WASI 0.2.12); Rust's `std::process::exit` reports
        // only success or failure (`exit-std`).
        "exit" => {
            wasip2::cli::exit::exit_with_code(arg(2).parse().unwrap_or(99));
            unreachable!("exit-with-code returned");
        }
        "exit-std" => std::process::exit(arg(2).parse().unwrap_or(99)),
        "fail" => return Err("failing on purpose".into()),
        "panic" => panic!("panicking on purpose"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![1u8; 1 << 20]);
            }
        }
        "recurse" => println!("{}", recurse(std::hint::black_box(1))),
        "flood" => {
            let line = "x".repeat(1023) + "\n";
            let mut out = std::io::stdout().lock();
            loop {
                if out.write_all(line.as_bytes()).is_err() {
                    std::process::exit(4);
                }
            }
        }
        "tcp" => match std::net::TcpStream::connect(arg(2)) {
            Ok(_) => println!("connected"),
            Err(e) => fail(3, &format!("cannot connect to {}: {e}", arg(2))),
        },
        "http" => http_get(&arg(2)),
        other => fail(64, &format!("unknown mode {other}")),
    }
    Ok(())
}

fn fail(code: u8, message: &str) {
    eprintln!("{message}");
    wasip2::cli::exit::exit_with_code(code);
}

/// Recursion on the wasm stack itself (no locals spilled to the linear-memory stack), in
/// a shape LLVM cannot turn into a loop.
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    recurse(n + 1).wrapping_mul(3) ^ n
}

fn http_get(url: &str) {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    match outgoing_handler::handle(request, None) {
        Err(e) => fail(3, &format!("refused: {e:?}")),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => println!("status {}", response.status()),
                Some(Ok(Err(e))) => fail(3, &format!("failed: {e:?}")),
                other => fail(3, &format!("failed: {other:?}")),
            }
        }
    }
}
