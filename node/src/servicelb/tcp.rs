//! The userspace TCP proxy of one host port: each accepted connection is
//! relayed to a ready endpoint (round-robin; an endpoint that refuses or
//! does not answer within the connect timeout makes way for the next); with
//! none the connection is closed at once.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::backends::Backends;

/// How long one endpoint gets to accept a connection before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, backends: Backends, name: String) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(relay(client, backends.clone(), name.clone()));
            }
            Err(e) => {
                tracing::debug!(service = %name, error = %e, "service lb: accept failed");
                // e.g. out of file descriptors: do not spin
                tokio::time::sleep(crate::proxy::ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Connects to the first endpoint that answers, in round-robin order.
pub async fn connect(backends: &Backends) -> Option<TcpStream> {
    for addr in backends.order() {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "service lb: endpoint refused"),
            Err(_) => tracing::debug!(%addr, "service lb: endpoint timed out"),
        }
    }
    None
}

async fn relay(mut client: TcpStream, backends: Backends, name: String) {
    let Some(mut upstream) = connect(&backends).await else {
        tracing::debug!(service = %name, "service lb: no ready endpoint answered");
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering each connection with `name` and closing.
    async fn named(name: &'static str) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        addr
    }

    async fn ask(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn relays_round_robin_skipping_dead_endpoints() {
        let (a, b) = (named("a").await, named("b").await);
        // a port nothing listens on
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
            .expect("port");
        let backends = Backends::new(vec![a, dead, b]);
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front = l.local_addr().expect("addr");
        tokio::spawn(serve(l, backends.clone(), "t/web:80".into()));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(ask(front).await);
        }
        assert_eq!(seen, vec!["a", "b", "b"], "the dead one falls through to b");
        backends.set(Vec::new());
        assert_eq!(ask(front).await, "", "no endpoint: closed at once");
    }
}
