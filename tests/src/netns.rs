//! Network namespaces that let a test cut the links between stores while clients and PD still
//! reach every store.
//!
//! Each store runs in a namespace of its own, attached by a veth pair to one bridge in the
//! test's namespace; stores get `10.<n>.0.<10+i>/24`, the bridge (where PD listens and the
//! clients sit) `10.<n>.0.1`. Traffic between stores is switched by the bridge, so nothing
//! on the machine (no sysctl, no firewall) is changed besides the links and namespaces this
//! creates. A link between two stores is cut with a blackhole route to the other store's
//! address inside each of the two namespaces. Everything is removed on drop; namespaces and
//! links left by a test process that died without dropping are removed by the next
//! [`StoreNetwork::create`]. Needs root (`CAP_NET_ADMIN`, `CAP_SYS_ADMIN`) and `ip`.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// Networks created by this process, to name each uniquely.
static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// The namespaces, bridge and veth pairs of one fleet.
pub struct StoreNetwork {
    /// `sh<pid>x<n>`: prefix of every link and namespace name.
    tag: String,
    /// Second octet of the subnet.
    subnet: u8,
    /// Store indexes with a namespace.
    stores: BTreeSet<usize>,
    /// Cut links (a < b).
    cut: BTreeSet<(usize, usize)>,
    /// Stores cut off from PD.
    cut_from_pd: BTreeSet<usize>,
}

/// Runs `ip` with `args`; fails with its stderr.
fn ip<S: AsRef<str>>(args: &[S]) -> Result<String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = Command::new("ip")
        .args(&args)
        .output()
        .with_context(|| format!("cannot run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pid in a name made by this module (`sh<pid>x<n>...`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("sh")?;
    let (pid, after) = rest.split_once('x')?;
    if after.is_empty() || !after.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and links left by test processes that are gone.
fn reap_stale() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name).is_some_and(|pid| !alive(pid)) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        for line in list.lines() {
            // `3: name@peer: <...>` or `3: name: <...>`
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if owner_pid(name).is_some_and(|pid| !alive(pid)) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

impl StoreNetwork {
    /// Whether this machine lets the test create namespaces (root and a working `ip`).
    pub fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        root && ip(&["netns", "list"]).is_ok()
    }

    /// Creates the bridge in a free `10.<n>.0.0/24` subnet.
    pub fn create() -> Result<StoreNetwork> {
        reap_stale();
        let n = NETWORKS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("sh{}x{n}", std::process::id());
        let used = ip(&["-o", "-4", "addr", "show"])?;
        let start = (std::process::id() + n * 37) % 150;
        let subnet = (0..150)
            .map(|k| 100 + ((start + k) % 150) as u8)
            .find(|s| !used.contains(&format!(" 10.{s}.")))
            .context("no free 10.x.0.0/24 subnet")?;
        let net = StoreNetwork {
            tag,
            subnet,
            stores: BTreeSet::new(),
            cut: BTreeSet::new(),
            cut_from_pd: BTreeSet::new(),
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        // A bridge without an address of its own takes the lowest MAC among its ports, so
        // adding a store's link could change it under the stores already running. Their
        // neighbour entries for PD's address then name a MAC the bridge no longer answers
        // to, and TCP's confirmations keep those entries from ever being looked up again:
        // the first store's requests to PD vanish. A set address never changes.
        ip(&[
            "link",
            "set",
            "dev",
            &bridge,
            "address",
            &format!("02:00:0a:{:02x}:00:01", net.subnet),
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.host_ip()),
            "dev",
            &bridge,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.pd_ip()),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// The namespace of store `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}s{i}", self.tag)
    }

    /// The address of the test's side (PD and clients).
    pub fn host_ip(&self) -> String {
        format!("10.{}.0.1", self.subnet)
    }

    /// PD's address: also the test's side, but apart from the clients' so that a store can
    /// be cut off from PD while clients still reach it.
    pub fn pd_ip(&self) -> String {
        format!("10.{}.0.2", self.subnet)
    }

    /// The address of store `i`.
    pub fn store_ip(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.subnet, 10 + i)
    }

    /// Creates store `i`'s namespace and link (once); returns the namespace.
    pub fn add_store(&mut self, i: usize) -> Result<String> {
        let ns = self.namespace(i);
        if self.stores.contains(&i) {
            return Ok(ns);
        }
        if i > 200 {
            bail!("store index {i} out of range");
        }
        let host = format!("{}h{i}", self.tag);
        let inner = format!("{}p{i}", self.tag);
        ip(&["netns", "add", &ns])?;
        self.stores.insert(i);
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ip(&["link", "set", &host, "master", &self.bridge()])?;
        ip(&["link", "set", &host, "up"])?;
        let addr = format!("{}/24", self.store_ip(i));
        ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The program and arguments that run `binary args` inside store `i`'s namespace (the
    /// process keeps its pid: `ip netns exec` execs it).
    pub fn wrap(&self, i: usize, binary: &str, args: Vec<String>) -> (String, Vec<String>) {
        let mut all = vec![
            "netns".to_string(),
            "exec".to_string(),
            self.namespace(i),
            binary.to_string(),
        ];
        all.extend(args);
        ("ip".to_string(), all)
    }

    /// Cuts the link between stores `a` and `b` (both directions).
    pub fn cut(&mut self, a: usize, b: usize) -> Result<()> {
        let pair = (a.min(b), a.max(b));
        if a == b || self.cut.contains(&pair) {
            return Ok(());
        }
        let to_b = format!("{}/32", self.store_ip(b));
        let to_a = format!("{}/32", self.store_ip(a));
        ip(&["-n", &self.namespace(a), "route", "add", "blackhole", &to_b])?;
        self.cut.insert(pair);
        ip(&["-n", &self.namespace(b), "route", "add", "blackhole", &to_a])?;
        Ok(())
    }

    /// Restores the link between stores `a` and `b`.
    pub fn restore(&mut self, a: usize, b: usize) -> Result<()> {
        let pair = (a.min(b), a.max(b));
        if !self.cut.remove(&pair) {
            return Ok(());
        }
        let to_b = format!("{}/32", self.store_ip(b));
        let to_a = format!("{}/32", self.store_ip(a));
        let r1 = ip(&["-n", &self.namespace(a), "route", "del", "blackhole", &to_b]);
        let r2 = ip(&["-n", &self.namespace(b), "route", "del", "blackhole", &to_a]);
        ignore_missing_route(r1)?;
        ignore_missing_route(r2)
    }

    /// Cuts store `i` off from PD (clients and other stores still reach it).
    pub fn cut_from_pd(&mut self, i: usize) -> Result<()> {
        if !self.cut_from_pd.insert(i) {
            return Ok(());
        }
        let to_pd = format!("{}/32", self.pd_ip());
        ip(&[
            "-n",
            &self.namespace(i),
            "route",
            "add",
            "blackhole",
            &to_pd,
        ])?;
        Ok(())
    }

    /// Reconnects store `i` to PD.
    pub fn restore_pd(&mut self, i: usize) -> Result<()> {
        if !self.cut_from_pd.remove(&i) {
            return Ok(());
        }
        let to_pd = format!("{}/32", self.pd_ip());
        ignore_missing_route(ip(&[
            "-n",
            &self.namespace(i),
            "route",
            "del",
            "blackhole",
            &to_pd,
        ]))
    }

    /// Restores every cut link, also those to PD.
    pub fn restore_all(&mut self) -> Result<()> {
        for (a, b) in self.cut.clone() {
            self.restore(a, b)?;
        }
        for i in self.cut_from_pd.clone() {
            self.restore_pd(i)?;
        }
        Ok(())
    }

    /// The cut links.
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        self.cut.iter().copied().collect()
    }
}

/// A route that is already gone is fine when deleting it: the point is that it is gone.
fn ignore_missing_route(r: Result<String>) -> Result<()> {
    match r {
        Err(e) if !format!("{e:#}").contains("No such process") => Err(e),
        _ => Ok(()),
    }
}

impl Drop for StoreNetwork {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it and with it the pair.
        for i in std::mem::take(&mut self.stores) {
            if let Err(e) = ip(&["netns", "del", &self.namespace(i)]) {
                eprintln!("could not delete a network namespace: {e:#}");
            }
            let host = format!("{}h{i}", self.tag);
            let _ = ip(&["link", "del", &host]);
        }
        if let Err(e) = ip(&["link", "del", &self.bridge()]) {
            eprintln!("could not delete the test bridge: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh network, or `None` (and a note) where namespaces cannot be made here.
    fn network_or_skip() -> Option<StoreNetwork> {
        if !StoreNetwork::available() {
            eprintln!("skipped: creating network namespaces needs root and `ip`");
            return None;
        }
        Some(StoreNetwork::create().unwrap())
    }

    /// Stores already talking to PD keep reaching it when more stores join: the bridge that
    /// holds PD's address keeps its MAC address.
    #[test]
    fn the_bridge_keeps_its_address_as_stores_join() {
        let Some(mut net) = network_or_skip() else {
            return;
        };
        let mac = |net: &StoreNetwork| {
            let line = ip(&["-br", "link", "show", "dev", &net.bridge()]).unwrap();
            line.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string()
        };
        let before = mac(&net);
        assert!(!before.is_empty());
        for i in 0..4 {
            net.add_store(i).unwrap();
            assert_eq!(
                mac(&net),
                before,
                "the bridge's address changed as store {i} joined"
            );
        }
    }

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner_pid("sh1234x0br"), Some(1234));
        assert_eq!(owner_pid("sh1234x12s3"), Some(1234));
        assert_eq!(owner_pid("shoal"), None);
        assert_eq!(owner_pid("sh12x"), None);
        assert!(alive(std::process::id()));
    }

    #[test]
    fn stores_reach_each_other_until_cut() {
        let Some(mut net) = network_or_skip() else {
            return;
        };
        let ns0 = net.add_store(0).unwrap();
        let ns1 = net.add_store(1).unwrap();
        let routes = |ns: &str| ip(&["-n", ns, "route", "show"]).unwrap();
        net.cut(0, 1).unwrap();
        assert!(routes(&ns0).contains(&format!("blackhole {}", net.store_ip(1))));
        assert!(routes(&ns1).contains(&format!("blackhole {}", net.store_ip(0))));
        net.cut_from_pd(1).unwrap();
        assert!(routes(&ns1).contains(&format!("blackhole {}", net.pd_ip())));
        assert!(!routes(&ns0).contains(&format!("blackhole {}", net.pd_ip())));
        net.restore_all().unwrap();
        assert!(!routes(&ns0).contains("blackhole"));
        assert!(!routes(&ns1).contains("blackhole"));
        let bridge = net.bridge();
        drop(net);
        assert!(!ip(&["netns", "list"]).unwrap().contains(&ns0));
        assert!(ip(&["link", "show", &bridge]).is_err());
    }
}
