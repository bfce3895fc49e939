//! Throwaway load check (keep-alive HTTP/1.1 clients against the mock).
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let stream = std::env::args().nth(1).as_deref() == Some("stream");
    let port: u16 = std::env::args().nth(2).unwrap().parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = format!(r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"hello there how are you"}}]}}"#);
    let req = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer mock-key\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut r = BufReader::new(s);
            let mut n = 0u64;
            let mut lat = Vec::new();
            while t.elapsed() < Duration::from_secs(3) {
                let t0 = Instant::now();
                r.get_mut().write_all(req.as_bytes()).await.unwrap();
                let mut len = None; let mut chunked = false;
                loop { let mut l = String::new(); r.read_line(&mut l).await.unwrap();
                    let l = l.trim_end().to_ascii_lowercase(); if l.is_empty() { break; }
                    if let Some(v) = l.strip_prefix("content-length: ") { len = Some(v.parse::<usize>().unwrap()); }
                    if l.starts_with("transfer-encoding") { chunked = true; } }
                if chunked { loop { let mut l = String::new(); r.read_line(&mut l).await.unwrap();
                    let sz = usize::from_str_radix(l.trim(), 16).unwrap(); let mut b = vec![0; sz + 2]; r.read_exact(&mut b).await.unwrap(); if sz == 0 { break; } } }
                else { let mut b = vec![0; len.unwrap()]; r.read_exact(&mut b).await.unwrap(); }
                lat.push(t0.elapsed().as_micros() as u64);
                n += 1;
            }
            (n, lat)
        }));
    }
    let mut total = 0; let mut all = Vec::new();
    for t in tasks { let (n, l) = t.await.unwrap(); total += n; all.extend(l); }
    all.sort();
    println!("{} req/s, p50 {}us p99 {}us", total as f64 / t.elapsed().as_secs_f64(), all[all.len()/2], all[all.len()*99/100]);
}
