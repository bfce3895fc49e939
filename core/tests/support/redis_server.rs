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
}

impl RedisServer {
    /// Starts a server, or `None` (with a SKIPPED line) when `redis-server`
    /// is not installed and `BIFROST_REQUIRE_REDIS` is not set.
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(std::env::var_os("BIFROST_REQUIRE_REDIS").is_none(), "redis-server is required but not installed");
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        // A free port can be taken between the look and the bind: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let dir = std::env::temp_dir().join(format!("bifrost-redis-{}-{port}", std::process::id()));
            let mut server = RedisServer { child: None, port, dir };
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
