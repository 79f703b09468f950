//! One host port's backends: the Service's ready endpoints, swapped in
//! whole after every change, taken round-robin (each connection or UDP
//! session starts at the next endpoint and falls back to the others).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// The endpoints behind one host port, shared by its listeners.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    endpoints: Arc<RwLock<Arc<Vec<SocketAddr>>>>,
    next: Arc<AtomicUsize>,
}

impl Backends {
    /// Backends starting with `endpoints`.
    pub fn new(endpoints: Vec<SocketAddr>) -> Backends {
        let b = Backends::default();
        b.set(endpoints);
        b
    }

    /// Replaces the endpoints (connections already made stay).
    pub fn set(&self, endpoints: Vec<SocketAddr>) {
        let new = Arc::new(endpoints);
        match self.endpoints.write() {
            Ok(mut e) => *e = new,
            Err(e) => *e.into_inner() = new,
        }
    }

    /// The endpoints now.
    pub fn current(&self) -> Arc<Vec<SocketAddr>> {
        match self.endpoints.read() {
            Ok(e) => e.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    /// The endpoints in the order to try for one new connection: the next
    /// one in turn first, then the others.
    pub fn order(&self) -> Vec<SocketAddr> {
        let all = self.current();
        if all.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % all.len();
        all[start..].iter().chain(&all[..start]).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn round_robin_with_fallbacks_and_swaps() {
        let b = Backends::new(vec![addr(1), addr(2), addr(3)]);
        assert_eq!(b.order(), vec![addr(1), addr(2), addr(3)]);
        assert_eq!(b.order(), vec![addr(2), addr(3), addr(1)]);
        assert_eq!(b.order(), vec![addr(3), addr(1), addr(2)]);
        b.set(vec![addr(9)]);
        assert_eq!(b.order(), vec![addr(9)]);
        b.set(Vec::new());
        assert!(b.order().is_empty());
    }
}
