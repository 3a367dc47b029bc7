//! A role that cannot run stops `fleetd serve` with its cause and a non-zero exit,
//! instead of leaving the other roles running on alone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_exits_non_zero_naming_the_cause_when_web_cannot_listen() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("fleetd-role-failure-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The address is taken for the whole test.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetd"))
        .arg("serve")
        .env("FLEET_DATABASE_URL", dir.join("fleet.db"))
        .env("FLEET_HTTP_ADDR", addr.to_string())
        .env(
            "FLEET_JWT_SECRET",
            "a-role-failure-test-secret-of-32-bytes-at-least",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("fleetd serve kept running although web cannot listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr)?;
    }
    assert!(!status.success(), "exit status {status}");
    assert!(
        stderr.contains("FLEET_HTTP_ADDR") && stderr.contains(&addr.to_string()),
        "the error names the setting and the address: {stderr}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
