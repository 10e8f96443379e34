//! A WASI 0.3 (`wasi:http/handler@0.3.0`) component: answers with its method, path and
//! the `spin-path-info` header, to show the handler and Spin headers reach it. A path
//! ending in `/trap` panics instead, one ending in `/spin` loops forever; one ending in
//! `/chain` answers the `x-chain` values the request arrived with (middleware order);
//! `/connect?port=P` opens a TCP connection to 127.0.0.1:P through `wasi:sockets@0.3.0`
//! and answers `connected`, or `refused: <error-code>`; `/lookup?name=N` resolves `N`
//! through `wasi:sockets@0.3.0`'s ip-name-lookup and answers `resolved <addresses>`, or
//! `refused: <error-code>`.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Handler);

struct Handler;

impl wasip3::exports::http::handler::Guest for Handler {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        if path.ends_with("/trap") {
            eprintln!("the WASI 0.3 guest traps on purpose");
            panic!("trap requested");
        }
        if path.ends_with("/spin") {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        let info = request
            .get_headers()
            .get("spin-path-info")
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let text = if let Some(port) = path.split_once("/connect?port=").and_then(|(_, p)| p.parse::<u16>().ok()) {
            connect(port).await
        } else if let Some((_, name)) = path.split_once("/lookup?name=") {
            look_up(name).await
        } else if path.ends_with("/chain") {
            let chain: Vec<String> = request.get_headers().get("x-chain").iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            format!("handler saw x-chain={}\n", chain.join(","))
        } else {
            format!("hello from WASI 0.3: path={path} path-info={info}\n")
        };
        let (mut body_tx, body_rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _result) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
        drop(trailers_tx);
        wit_bindgen::spawn_local(async move {
            let _ = body_tx.write_all(text.into_bytes()).await;
        });
        Ok(response)
    }
}

/// Connects to 127.0.0.1:`port` with WASI 0.3 sockets.
async fn connect(port: u16) -> String {
    use wasip3::sockets::types::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, TcpSocket};
    let socket = match TcpSocket::create(IpAddressFamily::Ipv4) {
        Ok(s) => s,
        Err(e) => return format!("refused: {e:?}\n"),
    };
    match socket.connect(IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) })).await {
        Ok(()) => "connected\n".to_string(),
        Err(e) => format!("refused: {e:?}\n"),
    }
}

/// Resolves `name` with WASI 0.3's ip-name-lookup.
async fn look_up(name: &str) -> String {
    use wasip3::sockets::types::IpAddress;
    match wasip3::sockets::ip_name_lookup::resolve_addresses(name.to_string()).await {
        Ok(addresses) => {
            let shown: Vec<String> = addresses
                .iter()
                .map(|a| match a {
                    IpAddress::Ipv4((a, b, c, d)) => format!("{a}.{b}.{c}.{d}"),
                    IpAddress::Ipv6(_) => "ipv6".to_string(),
                })
                .collect();
            format!("resolved {}\n", shown.join(" "))
        }
        Err(e) => format!("refused: {e:?}\n"),
    }
}
