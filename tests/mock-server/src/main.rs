//! `bifrost-mock`: the mock provider server as a process.
//!
//! ```text
//! bifrost-mock --port 0 [--host 127.0.0.1] [--api-key K]... [--workers N]
//!              [--latency-ms N] [--jitter-ms N] [--fail-status S --fail-rate R] [--chunks N] …
//! ```
//! Every directive is also a flag (`--name-with-dashes value`) and becomes the
//! server's default. The bound port is printed alone on the first line of
//! stdout, then the server runs until killed. Bad flags exit with status 2.

use std::io::Write;
use std::process::ExitCode;

use bifrost_mock::{directives, Directives, MockConfig, MockServer};

const USAGE: &str = "usage: bifrost-mock [--port P (default 0)] [--host H (default 127.0.0.1)] [--api-key K]... \
[--workers N (default 2)] [--latency-ms N] [--jitter-ms N] [--fail-status S] [--fail-rate R] [--retry-after S] \
[--fail-first N --scenario ID] [--requests-per-minute N] [--tokens-per-minute N] [--limit-window-ms N] [--chunks N] [--chunk-delay-ms N] [--truncate-after N] [--stream-error-after N] [--hang 1]";

struct Args {
    host: String,
    port: u16,
    workers: usize,
    config: MockConfig,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut host = "127.0.0.1".to_string();
    let mut port = 0u16;
    let mut workers = 2usize;
    let mut keys = Vec::new();
    let mut defaults = Directives::default();
    let mut limits = bifrost_mock::MockLimits::default();
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match flag.strip_prefix("--") {
            Some(f) => match f.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (f.to_string(), None),
            },
            None => return Err(format!("unexpected argument '{flag}'")),
        };
        let value = match inline.or_else(|| argv.next()) {
            Some(v) => v,
            None => return Err(format!("--{name} needs a value")),
        };
        match name.as_str() {
            "host" => host = value,
            "port" => port = value.parse().map_err(|_| format!("--port: '{value}' is not a port number"))?,
            "workers" => {
                workers = match value.parse() {
                    Ok(n @ 1..=1024) => n,
                    _ => return Err(format!("--workers: '{value}' is not 1..=1024")),
                }
            }
            "api-key" => keys.push(value),
            "requests-per-minute" | "tokens-per-minute" | "limit-window-ms" => {
                let n: u64 = match value.parse() {
                    Ok(n @ 1..) => n,
                    _ => return Err(format!("--{name}: '{value}' is not a positive integer")),
                };
                match name.as_str() {
                    "requests-per-minute" => limits.requests_per_minute = Some(n),
                    "tokens-per-minute" => limits.tokens_per_minute = Some(n),
                    _ => limits.window_ms = Some(n),
                }
            }
            other => {
                let key = other.replace('-', "_");
                if !directives::KEYS.contains(&key.as_str()) {
                    return Err(format!("unknown flag --{other}"));
                }
                defaults.set(&key, &value).map_err(|e| e.to_string())?;
            }
        }
    }
    if defaults.fail_first.is_some() && defaults.scenario.is_none() {
        return Err("--fail-first needs --scenario".to_string());
    }
    let mut config = MockConfig { defaults, limits, ..MockConfig::default() };
    if !keys.is_empty() {
        config.api_keys = keys;
    }
    Ok(Args { host, port, workers, config })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("bifrost-mock: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bifrost-mock: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match MockServer::bind((args.host.as_str(), args.port), args.config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bifrost-mock: cannot bind {}:{}: {e}", args.host, args.port);
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", server.addr().port()).and_then(|_| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
        drop(out);
        std::future::pending::<()>().await;
        ExitCode::SUCCESS
    })
}
