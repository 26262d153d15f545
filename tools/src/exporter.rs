//! `peregrine exporter`: serves a running server's counters to Prometheus
//! over HTTP, read from its counters file at every scrape (see
//! `peregrine_server::metrics` for why it is a separate process).
//!
//! A deliberately small HTTP/1.1 server: one connection at a time (a
//! scraper every few seconds), `GET /metrics` only, `Connection: close`,
//! requests over 8 KiB or slower than 2 s dropped. It never touches the
//! server's cores: pin it elsewhere or leave it to the scheduler.

use peregrine_server::counters_file::{read_counters, read_latency};
use peregrine_server::metrics::{
    render_openmetrics, render_text, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the exporter serves.
#[derive(Clone, Debug)]
pub struct Exporter {
    /// The server's counters file.
    pub counters_file: PathBuf,
    /// Labels of `peregrine_config_info` (e.g. layout, idle, app).
    pub config: Vec<(&'static str, String)>,
}

/// Most bytes of a request read.
const MAX_REQUEST: usize = 8192;

impl Exporter {
    /// Answers scrapes on `listener` until `stop` is set (checked every few
    /// milliseconds). Errors of single connections are not fatal.
    pub fn serve(&self, listener: TcpListener, stop: Arc<AtomicBool>) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = self.answer(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn answer(&self, mut conn: TcpStream) -> io::Result<()> {
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut req = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf)?;
            if n == 0 || req.len() + n > MAX_REQUEST {
                return Ok(());
            }
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&req);
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let openmetrics = lines.any(|l| {
            l.to_ascii_lowercase().starts_with("accept:") && l.contains("application/openmetrics-text")
        });
        let (status, ctype, body) = match (method, path) {
            ("GET", "/metrics") => match self.render(openmetrics) {
                Ok((ctype, body)) => ("200 OK", ctype, body),
                Err(e) => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("counters unavailable: {e}\n"),
                ),
            },
            ("GET", "/") => (
                "200 OK",
                "text/plain",
                "peregrine exporter: metrics at /metrics\n".into(),
            ),
            ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
            _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
        };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()
    }

    /// The current metrics: content type and body.
    pub fn render(
        &self,
        openmetrics: bool,
    ) -> Result<(&'static str, String), peregrine_server::counters_file::CountersFileError> {
        let snap = read_counters(Path::new(&self.counters_file))?;
        // Latency is an addition: a file without it shows counters only.
        let latency = read_latency(Path::new(&self.counters_file)).unwrap_or_default();
        Ok(if openmetrics {
            (
                OPENMETRICS_CONTENT_TYPE,
                render_openmetrics(&snap, &latency, &self.config),
            )
        } else {
            (TEXT_CONTENT_TYPE, render_text(&snap, &latency, &self.config))
        })
    }
}
