//! The proxy against raw loopback backends: upgrades spliced both ways,
//! forwarding headers (a client's own X-Forwarded-For not trusted),
//! hop-by-hop headers dropped, 404 / 503 / 502 with their bodies.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::ingress::routes;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("object"))
}

/// A proxy for host `app.test` → Service `app` → `backends` (ready), on loopback.
async fn proxy_to(backends: &[SocketAddr]) -> SocketAddr {
    let port = backends.first().map_or(80, |a| a.port());
    let addrs: Vec<_> = backends
        .iter()
        .map(|a| json!({"ip": a.ip().to_string()}))
        .collect();
    let table = routes::build(
        &[obj(
            json!({"metadata": {"name": "app", "namespace": "default"},
            "spec": {"rules": [{"host": "app.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "app", "port": {"number": 80}}}}]}}]}}),
        )],
        &[Arc::new(crate::ingress::korral_class(true))],
        &[obj(
            json!({"metadata": {"name": "app", "namespace": "default"},
            "spec": {"ports": [{"port": 80, "targetPort": port}]}}),
        )],
        &[obj(
            json!({"metadata": {"name": "app", "namespace": "default"},
            "subsets": [{"addresses": addrs, "ports": [{"port": port}]}]}),
        )],
        &[],
    );
    let shared = Shared::default();
    shared.set(table);
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(Proxy::new(shared).serve(l, None));
    addr
}

/// Reads until the end of the head; returns it and whatever body bytes followed.
async fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed before the end of the head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
    }
}

/// A backend answering one connection: a WebSocket-style upgrade then echo,
/// or a 200 whose body is the request head it received.
async fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (head, _) = read_head(&mut s).await;
                if head.to_ascii_lowercase().contains("upgrade: websocket") {
                    let _ = s
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                        .await;
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                } else {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\n\r\n{head}",
                        head.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    addr
}

async fn request(proxy: SocketAddr, raw: &str) -> (String, String) {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    let (head, mut body) = read_head(&mut s).await;
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn upgrades_are_spliced_both_ways() {
    let proxy = proxy_to(&[backend().await]).await;
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .expect("write");
    let (head, rest) = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(rest.is_empty());
    for msg in [&b"ping"[..], b"a longer frame of bytes"] {
        s.write_all(msg).await.expect("write");
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.expect("echo");
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn forwarding_headers_and_hop_by_hop() {
    let proxy = proxy_to(&[backend().await]).await;
    let (head, body) = request(
        proxy,
        "GET /x?y=1 HTTP/1.1\r\nHost: app.test:8080\r\nX-Forwarded-For: 6.6.6.6\r\nProxy-Connection: keep-alive\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let sent = body.to_ascii_lowercase();
    assert!(sent.starts_with("get /x?y=1 http/1.1"), "{body}");
    for want in [
        "host: app.test:8080",
        "x-forwarded-for: 127.0.0.1",
        "x-real-ip: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.test:8080",
    ] {
        assert!(sent.contains(want), "{want} missing in {body}");
    }
    for gone in ["6.6.6.6", "proxy-connection", "x-secret"] {
        assert!(!sent.contains(gone), "{gone} forwarded in {body}");
    }
    assert!(
        !head.to_ascii_lowercase().contains("keep-alive: timeout"),
        "the backend's hop-by-hop headers are dropped: {head}"
    );
}

#[tokio::test]
async fn not_found_unavailable_and_bad_gateway() {
    let proxy = proxy_to(&[backend().await]).await;
    let (head, body) = request(
        proxy,
        "GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(
        body.contains("no Ingress rule for host \"other.test\""),
        "{body}"
    );

    let empty = proxy_to(&[]).await;
    let (head, body) = request(
        empty,
        "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        body.contains("no ready endpoints for default/app:80"),
        "{body}"
    );

    // an endpoint nobody listens on
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let broken = proxy_to(&[dead]).await;
    let (head, body) = request(
        broken,
        "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(body.contains("default/app:80 did not answer"), "{body}");
}
