//! The service binary for tests of other crates (the benchmark, the
//! client), which cargo does not build for them: the one beside the test,
//! built first if missing.

use std::path::PathBuf;
use std::process::Command;

/// The `billing-api` binary of the test's own profile.
pub fn service_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows where it is");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests live in target/<profile>/deps");
    let binary = dir.join("billing-api");
    if !binary.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-p", "billing-api", "--bin", "billing-api"])
            .status()
            .expect("cargo runs");
        assert!(built.success(), "cannot build billing-api");
    }
    binary
}
