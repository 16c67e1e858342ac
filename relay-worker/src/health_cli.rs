//! `relay-worker health`: asks a running worker's `/healthz` and exits 0 when
//! it answers `200`, 1 otherwise. It is the container image's `HEALTHCHECK`:
//! the image holds no shell and no HTTP client, so the worker binary carries
//! its own. One plain HTTP/1.1 request over a TCP connection, with one
//! deadline for connecting, sending and reading the status line; `http://`
//! only (the endpoints never speak TLS).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Why the worker is not known to be healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0:?} is not an http://HOST:PORT/PATH URL")]
    BadUrl(String),
    #[error("{0} does not resolve to any address")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("not an HTTP answer: {0:?}")]
    NotHttp(String),
    #[error("answered {0}, not 200")]
    Status(u16),
}

/// Where to send the request, taken apart from an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A name or an address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PATH]` (port 80 and path `/` by default).
    pub fn parse(url: &str) -> Result<Target, HealthError> {
        let bad = || HealthError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || (host.contains(':') && !authority.starts_with('[')) {
            return Err(bad());
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The `/healthz` URL of a worker listening on `listen`: a wildcard address
/// (`0.0.0.0`, `::`, as in a container) is asked on the loopback address.
pub fn url_for_listen(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// Sends `GET` to `url` and returns the status code, all within `timeout`.
pub fn status(url: &str, timeout: Duration) -> Result<u16, HealthError> {
    let deadline = Instant::now() + timeout;
    let target = Target::parse(url)?;
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|_| HealthError::Resolve(target.host.clone()))?
        .collect();
    let mut last = HealthError::Resolve(target.host.clone());
    for addr in addrs {
        let left = remaining(deadline, timeout)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return exchange(stream, &target, addr, deadline, timeout),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(HealthError::Timeout(timeout));
            }
            Err(source) => {
                last = HealthError::Connect {
                    addr: addr.to_string(),
                    source,
                }
            }
        }
    }
    Err(last)
}

/// `Ok` when `url` answers `200` within `timeout`.
pub fn check(url: &str, timeout: Duration) -> Result<(), HealthError> {
    match status(url, timeout)? {
        200 => Ok(()),
        other => Err(HealthError::Status(other)),
    }
}

fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, HealthError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(HealthError::Timeout(timeout))
}

/// The longest status line read; anything longer is not our server.
const MAX_HEAD: usize = 4096;

fn exchange(
    mut stream: TcpStream,
    target: &Target,
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<u16, HealthError> {
    let io = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            HealthError::Timeout(timeout)
        } else {
            HealthError::Io {
                addr: addr.to_string(),
                source,
            }
        }
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: relay-worker-health\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header()
    );
    stream
        .set_write_timeout(Some(remaining(deadline, timeout)?))
        .map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        stream
            .set_read_timeout(Some(remaining(deadline, timeout)?))
            .map_err(io)?;
        match stream.read(&mut buf).map_err(io)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    parse_status_line(&head)
}

/// The code of `HTTP/1.x NNN reason`.
fn parse_status_line(head: &[u8]) -> Result<u16, HealthError> {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line).trim_end().to_owned();
    let mut words = line.split(' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        let shown: String = line.chars().take(80).collect();
        return Err(HealthError::NotHttp(shown));
    }
    code.parse::<u16>()
        .map_err(|_| HealthError::NotHttp(line.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    const SHORT: Duration = Duration::from_secs(2);

    /// A one-shot server on loopback that reads the request and answers `reply`
    /// (nothing at all when `None`, holding the connection open a while).
    /// Returns its URL and the request it received.
    fn server(reply: Option<&'static [u8]>) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            match reply {
                Some(bytes) => {
                    let _ = conn.write_all(bytes);
                }
                None => thread::sleep(Duration::from_millis(1500)),
            }
            String::from_utf8_lossy(&request).into_owned()
        });
        (format!("http://{addr}/healthz"), handle)
    }

    #[test]
    fn a_200_is_healthy_and_the_request_is_plain_http() {
        let (url, server) = server(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"));
        check(&url, SHORT).unwrap_or_else(|e| panic!("{e}"));
        let request = server.join().unwrap_or_else(|_| panic!("server thread"));
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[test]
    fn another_status_is_unhealthy() {
        let (url, _server) = server(Some(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert!(matches!(check(&url, SHORT), Err(HealthError::Status(503))));
    }

    #[test]
    fn a_status_line_split_over_reads_is_read_whole() {
        // One byte at a time is the worst split a server can make.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let t = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
            for b in b"HTTP/1.0 200 OK\r\n\r\n" {
                let _ = conn.write_all(&[*b]);
                let _ = conn.flush();
            }
        });
        assert_eq!(status(&format!("http://{addr}/"), SHORT).ok(), Some(200));
        let _ = t.join();
    }

    #[test]
    fn silence_ends_at_the_deadline() {
        let (url, _server) = server(None);
        let started = Instant::now();
        let result = check(&url, Duration::from_millis(300));
        assert!(matches!(result, Err(HealthError::Timeout(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_millis(1200));
    }

    #[test]
    fn garbage_is_not_http() {
        let (url, _server) = server(Some(b"SSH-2.0-OpenSSH_9.2\r\n"));
        assert!(matches!(check(&url, SHORT), Err(HealthError::NotHttp(_))));
        let (url, _server) = server(Some(b""));
        assert!(matches!(check(&url, SHORT), Err(HealthError::NotHttp(_))));
    }

    #[test]
    fn nobody_listening_is_a_connect_error() {
        // Bind then drop: the port is free, so the connection is refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let result = check(&format!("http://127.0.0.1:{port}/healthz"), SHORT);
        assert!(
            matches!(result, Err(HealthError::Connect { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn urls_are_taken_apart() {
        let t = |u: &str| Target::parse(u).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t("http://127.0.0.1:9464/healthz"),
            Target {
                host: "127.0.0.1".into(),
                port: 9464,
                path: "/healthz".into()
            }
        );
        assert_eq!(t("http://[::1]:9464/readyz").host, "::1");
        assert_eq!(t("http://[::1]:9464/readyz").host_header(), "[::1]:9464");
        assert_eq!(t("http://relay").port, 80);
        assert_eq!(t("http://relay").path, "/");
        for bad in [
            "https://127.0.0.1:9464/healthz",
            "127.0.0.1:9464",
            "http://:9464/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://::1:9464/",
            "http://[::1/",
            "http://u:p@host/",
            "http://host/a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_wildcard_listen_address_is_asked_on_loopback() {
        let url = |s: &str| url_for_listen(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")));
        assert_eq!(url("0.0.0.0:9464"), "http://127.0.0.1:9464/healthz");
        assert_eq!(url("[::]:9464"), "http://[::1]:9464/healthz");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/healthz");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_workers_own_endpoint_is_healthy() {
        let listener = crate::http::bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let ready = std::sync::Arc::new(crate::http::Readiness::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(listener, handle, ready, async {
            let _ = stopped.await;
        }));
        let base = format!("http://{addr}");
        let (health, readiness) = tokio::task::spawn_blocking(move || {
            (
                check(&format!("{base}/healthz"), SHORT),
                status(&format!("{base}/readyz"), SHORT),
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        health.unwrap_or_else(|e| panic!("/healthz: {e}"));
        // Not connected to a broker: alive, but not ready.
        assert_eq!(readiness.ok(), Some(503));
        let _ = stop.send(());
        let _ = server.await;
    }
}
