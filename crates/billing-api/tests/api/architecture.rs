//! The crate's import rules, read from its sources.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// `startup` is the composition root: it builds the state and mounts the
/// routes, so nothing it mounts may import it back (no import circle).
/// Only the entry points (`main.rs`, which hands `startup::serve` to the
/// command line, and `lib.rs`) name it.
#[test]
fn nothing_startup_mounts_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let importers: Vec<String> = sources(&src)
        .into_iter()
        .filter(|path| {
            let source = std::fs::read_to_string(path).unwrap();
            ["crate::startup", "super::startup", "billing_api::startup"]
                .iter()
                .any(|name| source.contains(name))
        })
        .map(|path| path.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert_eq!(importers, ["main.rs"], "modules importing startup");
}

/// The JSON API and the admin console are mounted side by side by
/// `startup`; neither imports the other (both mount through `http`).
#[test]
fn the_api_and_the_console_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (room, other) in [
        ("http/routes", "crate::http::admin"),
        ("http/admin", "crate::http::routes"),
    ] {
        for path in sources(&src.join(room)) {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains(other), "{} imports {other}", path.display());
        }
    }
}

/// The rooms and what each may not import: `http`, `background` and `cli`
/// sit side by side over `stripe`, and the shared modules at the crate's
/// root import no room. The one edge across: `billing-api notify retry`
/// posts through the background's notification sender.
#[test]
fn each_room_imports_only_the_rooms_below_it() {
    const ROOMS: [&str; 5] = ["http", "background", "cli", "stripe", "startup"];
    const SHARED: [&str; 5] = [
        "settings",
        "wire.rs",
        "cache.rs",
        "metrics.rs",
        "telemetry.rs",
    ];
    const ALLOWED: [(&str, &str); 1] = [("cli", "crate::background::notify::Sender")];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let below = |room: &str| -> &[&str] {
        match room {
            "http" | "background" | "cli" => &["stripe"],
            _ => &[],
        }
    };
    let rooms = ["http", "background", "cli", "stripe"]
        .map(|room| (room, below(room)))
        .into_iter()
        .chain(SHARED.map(|shared| (shared, &[][..])));
    let mut crossings = Vec::new();
    for (room, may) in rooms {
        for path in sources(&src)
            .into_iter()
            .filter(|p| p.starts_with(src.join(room)))
        {
            let mut text = std::fs::read_to_string(&path).unwrap();
            for (_, allowed) in ALLOWED.iter().filter(|(from, _)| *from == room) {
                text = text.replace(allowed, "");
            }
            for other in ROOMS.iter().filter(|o| **o != room && !may.contains(o)) {
                if text.contains(&format!("crate::{other}")) {
                    let file = path.strip_prefix(&src).unwrap().display().to_string();
                    crossings.push(format!("{file} imports {other}"));
                }
            }
        }
    }
    assert!(crossings.is_empty(), "imports across rooms: {crossings:#?}");
}
