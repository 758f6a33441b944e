//! A small network of the test's own: hosts in network namespaces, each with its own loopback,
//! address and EPMD, on a bridge that lives in a namespace of its own (so Docker's FORWARD
//! policy in the machine's namespace never sees the traffic), and a veth that puts the test's
//! own namespace on it as `.1`. Everything is removed when the `Lan` is dropped, the EPMDs the
//! VMs started in the namespaces included.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// The hosts `10.213.S.2`, `10.213.S.3`, ... and this namespace as `10.213.S.1`.
#[derive(Debug)]
pub struct Lan {
    tag: String,
    subnet: u8,
    hosts: usize,
}

fn sh(script: &str) -> bool {
    Command::new("sh").args(["-c", script]).status().is_ok_and(|s| s.success())
}

#[track_caller]
fn must(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Lan {
    pub fn new(hosts: usize) -> Lan {
        let pid = std::process::id();
        let tag = format!("rbl{}", pid % 100_000);
        // A /24 no other Lan of this machine uses: taken under a lock, by its route.
        let lock = std::fs::File::create("/tmp/rancher-boot-it-lan.lock").expect("lock file");
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map(|held| {
                let subnet = (0..200u32)
                    .map(|i| 20 + ((pid + i) % 200) as u8)
                    .find(|s| !sh(&format!("ip route show 10.213.{s}.0/24 | grep -q .")))
                    .expect("a free 10.213.x.0/24");
                let lan = Lan { tag: tag.clone(), subnet, hosts };
                lan.build();
                drop(held);
                lan
            })
            .unwrap_or_else(|_| panic!("lock"))
    }

    fn build(&self) {
        let (t, s) = (&self.tag, self.subnet);
        must(&format!(
            "ip netns add {t}sw && ip -n {t}sw link add br0 type bridge && ip -n {t}sw link set br0 up && \
             ip link add {t}r type veth peer name p1 netns {t}sw && ip -n {t}sw link set p1 master br0 && \
             ip -n {t}sw link set p1 up && ip addr add 10.213.{s}.1/24 dev {t}r && ip link set {t}r up"
        ));
        for i in 0..self.hosts {
            let ns = self.ns(i);
            let n = i + 2;
            must(&format!(
                "ip netns add {ns} && ip -n {ns} link set lo up && \
                 ip -n {ns} link add eth0 type veth peer name p{n} netns {t}sw && \
                 ip -n {t}sw link set p{n} master br0 && ip -n {t}sw link set p{n} up && \
                 ip -n {ns} addr add 10.213.{s}.{n}/24 dev eth0 && ip -n {ns} link set eth0 up"
            ));
        }
    }

    /// The namespace of host `i` (0-based).
    pub fn ns(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    /// This namespace's address on the LAN.
    pub fn own_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnet, 1))
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnet, (i + 2) as u8))
    }

    /// An address on the LAN that no host has (nobody answers ARP for it).
    pub fn nobody(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnet, 100 + n))
    }

    /// `program` run in host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(i), program]);
        command
    }

    /// Runs an iptables rule in host `i`'s namespace (its own tables, empty at first).
    pub fn iptables(&self, i: usize, rule: &str) {
        must(&format!("ip netns exec {} iptables {rule}", self.ns(i)));
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            let ns = self.ns(i);
            // The EPMD an `erl` started there outlives the VM and keeps the namespace alive.
            sh(&format!("for p in $(ip netns pids {ns}); do kill -9 $p; done; ip netns del {ns}"));
        }
        sh(&format!("ip link del {}r; ip netns del {}sw", self.tag, self.tag));
    }
}
