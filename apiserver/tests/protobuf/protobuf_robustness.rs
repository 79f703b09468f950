//! Malformed protobuf never panics the decoder: random bytes, and real bodies
//! with bytes flipped, dropped, inserted or cut off, all end in Ok or Err.

use std::fs;

use apiserver::protobuf::{ProtobufError, decode_request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fixtures;

fn real_bodies() -> Vec<Vec<u8>> {
    let dir = fixtures().join("kubectl");
    let mut out: Vec<Vec<u8>> = fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pb"))
        .map(|e| fs::read(e.path()).expect("body"))
        .collect();
    out.sort();
    out
}

fn mutate(rng: &mut StdRng, body: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..4) {
        if body.is_empty() {
            return;
        }
        let i = rng.random_range(0..body.len());
        match rng.random_range(0..5) {
            0 => body[i] = rng.random(),
            1 => body[i] ^= 1 << rng.random_range(0..8),
            2 => {
                body.remove(i);
            }
            3 => body.insert(i, rng.random()),
            _ => body.truncate(i),
        }
    }
}

#[test]
fn protobuf_mutated_real_bodies_never_panic() {
    let bodies = real_bodies();
    assert!(!bodies.is_empty());
    let mut rng = StdRng::seed_from_u64(0x6b38_7300);
    let (mut ok, mut err) = (0, 0);
    for round in 0..20_000 {
        let mut body = bodies[round % bodies.len()].clone();
        mutate(&mut rng, &mut body);
        match decode_request(&body) {
            Ok(v) => {
                assert!(v.is_object());
                ok += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                err += 1;
            }
        }
    }
    // Both outcomes occur: the mutations reach past the envelope.
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}

#[test]
fn protobuf_random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut rejected = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..256);
        let mut body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.7) {
            // behind the magic, so the envelope and object readers see the bytes
            body.splice(0..0, b"k8s\0".iter().copied());
        }
        if decode_request(&body).is_err() {
            rejected += 1;
        }
    }
    assert!(
        rejected > 10_000,
        "random bytes are mostly rejected: {rejected}"
    );
}

#[test]
fn protobuf_truncated_bodies_are_errors_not_panics() {
    for body in real_bodies() {
        for cut in 0..body.len() {
            let _ = decode_request(&body[..cut]);
        }
        assert_eq!(decode_request(&body[..3]), Err(ProtobufError::NoMagic));
    }
}
