//! The service binary as a process of its own.

use serde_json::Value;

/// Starts the binary built by `command` (its environment set, `PORT=0` and
/// JSON logs among it), and returns the process, its log lines as they
/// come, and the port it listens on.
pub fn spawn_service(
    mut command: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>, u64) {
    use std::io::BufRead;
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the service logs its port");
        if let Some(port) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|l| l["port"].as_u64())
        {
            break port;
        }
    };
    (child, lines, port)
}
