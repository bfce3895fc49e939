//! A real `redis-server` for tests (issue 17): started on a free loopback
//! port with no persistence, in its own directory, and killed with
//! SIGKILL when dropped. Tests never use a system Redis on 6379.
//!
//! `.ci/run` installs Debian's `redis-server` and sets
//! `BIFROST_REQUIRE_REDIS`; without it, a machine that has no
//! `redis-server` skips the test visibly instead of failing it.

#![allow(dead_code)] // each test binary uses the part it needs

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Extra `redis-server` arguments (a Cluster node's).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server, or `None` (with a SKIPPED line) when `redis-server`
    /// is not installed and `BIFROST_REQUIRE_REDIS` is not set.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// [`RedisServer::start`] with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(std::env::var_os("BIFROST_REQUIRE_REDIS").is_none(), "redis-server is required but not installed");
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        // A free port can be taken between the look and the bind: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let dir = std::env::temp_dir().join(format!("bifrost-redis-{}-{port}", std::process::id()));
            let extra = extra.iter().map(|a| a.to_string()).collect();
            let mut server = RedisServer { child: None, port, dir, extra };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on a free loopback port in 5 tries");
    }

    fn spawn(&mut self) -> bool {
        std::fs::create_dir_all(&self.dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server spawns");
        self.child = Some(child);
        // Ready when it answers PING (bounded: a busy machine is slow to start one).
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if self.command(&["PING"]).as_deref() == Some("+PONG") {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                break; // exited: the port was taken
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILLs the server (Redis "going away" mid-run); `restart` brings
    /// it back on the same port, empty.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on its port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }

    /// Sends one command (arguments as RESP bulk strings) and returns the
    /// first line of the reply, or `None` if the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        Some(text.split("\r\n").next().unwrap_or_default().to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local Redis Cluster of three primaries (no replicas), made with
/// `redis-cli --cluster create`. A node killed and restarted keeps its
/// identity and slots (its `nodes.conf`), but no data.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Option<RedisCluster> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])?);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        Some(cluster)
    }

    /// Waits (bounded) until every live node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        for n in &self.nodes {
            while !cli(n.port(), &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < until, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The node (index) whose slots hold `key`.
    pub fn owner_of(&self, key: &str) -> usize {
        let slot: u16 = cli(self.nodes[0].port(), &["cluster", "keyslot", key]).trim().parse().expect("a slot");
        for (i, n) in self.nodes.iter().enumerate() {
            let nodes = cli(n.port(), &["cluster", "nodes"]);
            let Some(me) = nodes.lines().find(|l| l.contains("myself")) else { continue };
            for range in me.split_whitespace().skip(8) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    if (a..=b).contains(&slot) {
                        return i;
                    }
                }
            }
        }
        panic!("no node owns slot {slot}");
    }
}

impl RedisCluster {
    /// Moves the slot of `key` (and its keys) to node `to`, the way
    /// `redis-cli --cluster reshard` does: IMPORTING / MIGRATING, MIGRATE
    /// each key, then SETSLOT NODE on every node.
    pub fn migrate_slot_of(&self, key: &str, to: usize) {
        let from = self.owner_of(key);
        assert_ne!(from, to, "already there");
        let (src, dst) = (self.nodes[from].port(), self.nodes[to].port());
        let slot = cli(src, &["cluster", "keyslot", key]).trim().to_string();
        let id = |port: u16| cli(port, &["cluster", "myid"]).trim().to_string();
        let (src_id, dst_id) = (id(src), id(dst));
        cli(dst, &["cluster", "setslot", &slot, "importing", &src_id]);
        cli(src, &["cluster", "setslot", &slot, "migrating", &dst_id]);
        for k in cli(src, &["cluster", "getkeysinslot", &slot, "1000"]).lines().filter(|l| !l.is_empty()) {
            let out = cli(src, &["migrate", "127.0.0.1", &dst.to_string(), k, "0", "5000"]);
            assert!(out.contains("OK"), "migrate {k}: {out}");
        }
        for n in &self.nodes {
            cli(n.port(), &["cluster", "setslot", &slot, "node", &dst_id]);
        }
        self.wait_ok();
        assert_eq!(self.owner_of(key), to);
    }
}

/// `redis-cli -p <port> <args>`'s output ("" if it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
