//! `respackd run` as systemd runs it: READY, WATCHDOG and STOPPING on `NOTIFY_SOCKET`,
//! `/healthz` and `/metrics` on the local port, a clean exit on SIGTERM; and the unit file.

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn http_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Kills respackd if the test fails half-way, so no daemon outlives it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..n]).to_string();
            let found = message.lines().any(|line| line == wanted);
            seen.push(message);
            if found {
                return seen;
            }
        }
    }
    panic!("no {wanted} from respackd within 30 s; got {seen:?}");
}

#[test]
fn run_notifies_systemd_serves_health_and_metrics_and_stops_on_sigterm() {
    let dir = TempDir::new("service");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let port = free_port();
    let mut env = daemon_env(dir.path(), &sqlite_url(dir.path()), &[("RESPACK_MAIL_TRANSPORT", "file".into())]);
    env.insert("RESPACK_DAEMON_METRICS_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("RESPACK_DAEMON_SWEEP_SCHEDULE".into(), "* * * * * *".into());
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let child = Command::new("/bin/sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run", env!("CARGO_BIN_EXE_respackd")])
        .env_clear()
        .envs(&env)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let child = &mut child.0;

    wait_for(&socket, "READY=1");
    wait_for(&socket, "WATCHDOG=1");
    let health = http_get(port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = http_get(port, "/metrics");
    assert!(metrics.contains("# TYPE respackd_sweeps_total counter"), "{metrics}");
    let sweeps: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("respackd_sweeps_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(sweeps >= 1, "{metrics}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for(&socket, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "respackd did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a SIGTERM stop is a clean exit: {exit:?}");
}

#[test]
fn the_unit_file_is_type_notify_with_watchdog_restart_and_hardening() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/respackd.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in [
        "Type=notify",
        "ExecStart=/usr/local/bin/respackd run",
        "WatchdogSec=60s",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "KillSignal=SIGTERM",
    ] {
        assert!(lines.contains(&wanted), "the unit file lacks {wanted}");
    }
}
