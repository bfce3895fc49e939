//! The test harness for issue 17's fleet tests works against a real
//! `redis-server`: it starts one on a free loopback port, talks to it,
//! loses it to SIGKILL and brings it back empty on the same port.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;

#[test]
fn a_real_redis_server_starts_answers_dies_and_comes_back() {
    let Some(mut redis) = RedisServer::start() else { return };
    assert_ne!(redis.port(), 6379, "never the system Redis");
    assert_eq!(redis.command(&["SET", "bifrost:test", "42"]).as_deref(), Some("+OK"));
    assert_eq!(redis.command(&["GET", "bifrost:test"]).as_deref(), Some("$2"));
    // The server clock the limit scripts will use: seconds and microseconds.
    assert_eq!(redis.command(&["TIME"]).as_deref(), Some("*2"));
    redis.kill();
    assert_eq!(redis.command(&["PING"]), None, "gone after SIGKILL");
    redis.restart();
    assert_eq!(redis.command(&["PING"]).as_deref(), Some("+PONG"));
    assert_eq!(redis.command(&["GET", "bifrost:test"]).as_deref(), Some("$-1"), "no persistence");
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
}
