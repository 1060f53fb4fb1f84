//! Network namespaces for a run (root only): each broker gets its own namespace with a veth
//! pair to a bridge in the harness's namespace, so network faults are made by the kernel.
//!
//! ```text
//!   harness (root ns) 10.77.K.254 ── bridge plbrK ──┬── veth ── ns plK-n1: eth0 10.77.K.1
//!                                                   ├── veth ── ns plK-n2: eth0 10.77.K.2
//!                                                   └── ...
//!   isolate(n):  link eth0 down in n's namespace (cut from everyone, the harness too)
//!   block(a, b): a blackhole route to b's address in a's namespace: nothing a sends
//!                reaches b (b's packets still reach a, whose answers are lost), so
//!                pairs in both directions make any partition (split, bridge, ring) and
//!                pairs in one direction a one-way one; the harness still reaches all
//!   netem(n, …): tc qdisc netem on n's eth0 (delay, loss, duplication, reordering)
//! ```
//!
//! `K` keeps concurrent runs apart (their own subnet, bridge and namespaces). Everything is
//! removed when the [`Net`] is dropped.

use std::process::Command;

/// One run's namespaces and bridge.
#[derive(Debug)]
pub struct Net {
    k: u8,
    nodes: Vec<u64>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// Whether this process may make what a run needs (root, and a kernel and sandbox that
    /// allow namespaces, veth pairs and bridges): tried on throwaway ones.
    pub fn available() -> bool {
        let id = std::process::id() % 100_000;
        let (ns, veth, bridge) = (
            format!("plprobe{id}"),
            format!("plpv{id}"),
            format!("plpb{id}"),
        );
        let ok = ip(&["netns", "add", &ns]).is_ok()
            && ip(&["link", "add", &bridge, "type", "bridge"]).is_ok()
            && ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])
            .is_ok()
            && ip(&["link", "set", &veth, "master", &bridge]).is_ok();
        let _ = ip(&["link", "del", &veth]);
        let _ = ip(&["link", "del", &bridge]);
        let _ = ip(&["netns", "del", &ns]);
        ok
    }

    /// Creates namespaces for `nodes` on subnet 10.77.`k`.0/24.
    pub fn create(k: u8, nodes: &[u64]) -> Result<Net, String> {
        let net = Net {
            k,
            nodes: nodes.to_vec(),
        };
        net.teardown(); // leftovers of a crashed run with the same K
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.77.{k}.254/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for &n in nodes {
            let ns = net.ns(n);
            let host_end = format!("pl{k}h{n}");
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            let addr = format!("{}/24", net.ip(n));
            for args in [
                vec!["addr", "add", addr.as_str(), "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["netns", "exec", ns.as_str(), "ip"];
                full.extend(args);
                ip(&full)?;
            }
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("plbr{}", self.k)
    }

    /// Node `n`'s namespace.
    pub fn ns(&self, n: u64) -> String {
        format!("pl{}-n{n}", self.k)
    }

    /// Node `n`'s address.
    pub fn ip(&self, n: u64) -> String {
        format!("10.77.{}.{n}", self.k)
    }

    /// The command prefix that runs a program in node `n`'s namespace.
    pub fn launcher(&self, n: u64) -> Vec<String> {
        ["ip", "netns", "exec"]
            .into_iter()
            .map(str::to_owned)
            .chain([self.ns(n)])
            .collect()
    }

    /// Cuts node `n` off the network (`true`) or reconnects it.
    pub fn isolate(&self, n: u64, cut: bool) -> Result<(), String> {
        let state = if cut { "down" } else { "up" };
        ip(&[
            "netns",
            "exec",
            &self.ns(n),
            "ip",
            "link",
            "set",
            "eth0",
            state,
        ])
    }

    /// Drops everything node `from` sends to node `to` (`true`), or lets it through again.
    pub fn block(&self, from: u64, to: u64, drop: bool) -> Result<(), String> {
        let verb = if drop { "add" } else { "del" };
        let target = format!("{}/32", self.ip(to));
        ip(&["-n", &self.ns(from), "route", verb, "blackhole", &target])
    }

    /// Whether the kernel has netem (the `sch_netem` module): probed on node `n`'s link.
    pub fn netem_supported(&self, n: u64) -> bool {
        let ok = self.netem(n, Some("delay 1ms")).is_ok();
        let _ = self.netem(n, None);
        ok
    }

    /// Puts a netem qdisc (e.g. `delay 100ms 50ms loss 10%`) on node `n`'s link, or
    /// removes it (`None`).
    pub fn netem(&self, n: u64, spec: Option<&str>) -> Result<(), String> {
        let ns = self.ns(n);
        match spec {
            Some(spec) => {
                let mut args = vec!["netns", "exec", &ns, "tc", "qdisc", "replace", "dev"];
                args.extend(["eth0", "root", "netem"]);
                args.extend(spec.split_whitespace());
                ip(&args)
            }
            None => {
                // Nothing to remove is fine.
                let _ = ip(&[
                    "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                ]);
                Ok(())
            }
        }
    }

    fn teardown(&self) {
        for &n in &self.nodes {
            let _ = ip(&["netns", "del", &self.ns(n)]);
            let _ = ip(&["link", "del", &format!("pl{}h{n}", self.k)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}
