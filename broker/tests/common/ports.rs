//! Listening ports for test brokers that nothing else on the machine will take.
//!
//! A port the OS hands out for `bind(0)` comes from the ephemeral range, the same range
//! outgoing connections take their source ports from: a broker restarted on "its" port
//! can find it in use by some client's connection. Ports below that range are never
//! picked for outgoing connections, so tests take theirs there, each at most once per
//! test process, and check that it is free.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const FIRST: u32 = 10_000;

/// The first port of Linux's ephemeral range (its default if it cannot be read).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .filter(|&p: &u32| p > FIRST + 1_000)
        .unwrap_or(32_768)
}

/// A loopback address that is free now, outside the ephemeral range, and not handed out
/// before by this process.
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = ephemeral_start() - FIRST;
    // Test processes of one run start apart in the range (by process id).
    let _ = NEXT.compare_exchange(
        0,
        std::process::id().wrapping_mul(7_919) % span + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + span);
}
