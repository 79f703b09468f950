//! The userspace UDP proxy of one host port: each client address gets a
//! session — a socket connected to one ready endpoint (round-robin) whose
//! replies go back to the client — ended after [`SESSION_IDLE`] without a
//! reply (the next datagram opens a new one), as kube-proxy's userspace
//! mode did.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::backends::Backends;

/// A session whose endpoint sends nothing for this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(30);

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// Relays datagrams arriving on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, backends: Backends, name: String) {
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(service = %name, error = %e, "service lb: UDP receive failed");
                tokio::time::sleep(crate::proxy::ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let existing = sessions.lock().ok().and_then(|s| s.get(&client).cloned());
        let upstream = match existing {
            Some(u) => u,
            None => match open(&backends).await {
                Some(u) => {
                    let u = Arc::new(u);
                    if let Ok(mut s) = sessions.lock() {
                        s.insert(client, u.clone());
                    }
                    tokio::spawn(replies(socket.clone(), u.clone(), client, sessions.clone()));
                    u
                }
                None => continue,
            },
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// A socket connected to the next ready endpoint.
async fn open(backends: &Backends) -> Option<UdpSocket> {
    let addr = *backends.order().first()?;
    let local = SocketAddr::from(([0, 0, 0, 0], 0));
    let s = UdpSocket::bind(local).await.ok()?;
    s.connect(addr).await.ok()?;
    Some(s)
}

/// Sends the endpoint's replies back to `client` until the session idles out.
async fn replies(
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    sessions: Sessions,
) {
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok(n)) = tokio::time::timeout(SESSION_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
    if let Ok(mut s) = sessions.lock() {
        s.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_and_replies_are_relayed_per_client() {
        // an echo server prefixing its replies
        let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let mut reply = b"echo ".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&reply, from).await;
            }
        });
        let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let front_addr = front.local_addr().expect("addr");
        tokio::spawn(serve(
            front,
            Backends::new(vec![echo_addr]),
            "t/dns:53".into(),
        ));
        for msg in ["one", "two"] {
            let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            client.connect(front_addr).await.expect("connect");
            client.send(msg.as_bytes()).await.expect("send");
            let mut buf = [0u8; 1500];
            let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                .await
                .expect("a reply in time")
                .expect("recv");
            assert_eq!(&buf[..n], format!("echo {msg}").as_bytes());
        }
    }
}
