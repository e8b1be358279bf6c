//! A real headless Chromium driven through ChromeDriver (W3C WebDriver over
//! HTTP/1.1 on loopback), for the explorer's browser tests.
//!
//! Debian's `chromium` and `chromium-driver` packages provide the two
//! binaries (`.ci/run` installs them). Without them the tests skip with a
//! message, unless `AGORA_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their
//! absence a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// ChromeDriver, from Debian's `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why a WebDriver command failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// The driver could not be reached or answered garbage.
    #[error("chromedriver: {0}")]
    Io(#[from] std::io::Error),
    /// The driver answered with a WebDriver error.
    #[error("webdriver {command}: {message}")]
    Command {
        /// The command sent.
        command: String,
        /// The driver's error.
        message: String,
    },
}

/// A running ChromeDriver with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile_dir::TempDir,
}

/// A minimal temporary directory (the crate's dev-dependency `tempfile` is
/// not visible from `src/`), removed on drop.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        /// A fresh directory under the system temp dir.
        pub fn new(prefix: &str) -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }

        /// The directory.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session, or returns
    /// `None` (after saying why) when they are not installed and not
    /// required.
    pub fn launch_or_skip(test: &str) -> Option<Browser> {
        let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
        if !present {
            let required = std::env::var("AGORA_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: AGORA_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED {test}: {CHROMIUM} / {CHROMEDRIVER} not installed \
                 (apt-get install chromium chromium-driver; .ci/run does)"
            );
            return None;
        }
        Some(Self::launch().expect("starting chromedriver and chromium"))
    }

    fn launch() -> Result<Browser, BrowserError> {
        let port = crate::ports::unused_port(false);
        // Its own process group, so that Chromium, which ChromeDriver starts,
        // is stopped with it on every path (a session that never opened
        // cannot be closed with DELETE).
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let profile = tempfile_dir::TempDir::new("agora-chromium")?;
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(
                    std::io::Error::other("chromedriver did not listen within 20 s").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags keep Chromium off the network it cannot reach here
        // (background services, component updates, sync) and headless.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", b._profile.path().display()),
                ],
            },
        }}});
        let v = b.command("POST", "/session", Some(caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| std::io::Error::other(format!("no session id in {v}")))?
            .to_string();
        Ok(b)
    }

    /// Opens `url` and waits for its load.
    pub fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.command(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(json!({ "url": url })),
        )
        .map(|_| ())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Result<Value, BrowserError> {
        self.command(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Polls `script` until `ok` accepts its value, up to `within`; returns
    /// the accepted value, or the last one seen in the error.
    pub fn wait_for(
        &self,
        what: &str,
        script: &str,
        within: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let t0 = Instant::now();
        let mut last = Value::Null;
        while t0.elapsed() < within {
            match self.eval(script) {
                Ok(v) if ok(&v) => return Ok(v),
                Ok(v) => last = v,
                Err(e) => last = Value::String(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{what}: not within {within:?}; last value {last}"))
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<(), BrowserError> {
        let v = self.command(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        )?;
        let png = base64_decode(v.as_str().unwrap_or_default())
            .ok_or_else(|| std::io::Error::other("screenshot is not base64"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// One WebDriver command; its `value`, or the driver's error.
    fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BrowserError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let payload = read_response(&mut s)?;
        let v: Value = serde_json::from_str(&payload).map_err(|e| {
            std::io::Error::other(format!("chromedriver answered {payload:?}: {e}"))
        })?;
        let value = v["value"].clone();
        if let Some(err) = value.get("error").and_then(Value::as_str) {
            return Err(BrowserError::Command {
                command: format!("{method} {path}"),
                message: format!("{err}: {}", value["message"].as_str().unwrap_or("")),
            });
        }
        Ok(value)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs `step`; if it panics, saves a screenshot named after it under
/// `target/explorer-screenshots/` (printing the path) and panics on.
pub fn with_screenshot<T>(browser: &Browser, step: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let path = screenshot_dir().join(format!("{step}.png"));
            match browser.screenshot(&path) {
                Ok(()) => eprintln!("screenshot of the failed step: {}", path.display()),
                Err(err) => eprintln!("no screenshot of the failed step: {err}"),
            }
            std::panic::resume_unwind(e)
        }
    }
}

fn screenshot_dir() -> PathBuf {
    crate::harness::bin_dir()
        .parent()
        .map(|p| p.join("explorer-screenshots"))
        .unwrap_or_else(|| PathBuf::from("explorer-screenshots"))
}

/// Reads one HTTP response's body: by its Content-Length, chunked, or to
/// the end (ChromeDriver may keep the connection open, so reading to the end
/// alone would wait for the timeout).
fn read_response(s: &mut TcpStream) -> std::io::Result<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other(
                "chromedriver closed before answering",
            ));
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    Ok(if chunked { dechunk(&body) } else { body })
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 (with padding), as WebDriver returns screenshots.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if *c == b'=' { 0 } else { val(*c)? };
            n |= v << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_chunks_decode() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a*==").is_none());
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
