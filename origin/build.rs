//! Embeds the dashboard's bundle in the origin, when it was built.
//!
//! `scripts/build-dashboard.sh` bundles the page's script and style into `dashboard/dist/`
//! (`dashboard.js`, `dashboard.css`). This writes `$OUT_DIR/dashboard_bundle.rs`, a constant
//! that `include_bytes!`s both when both exist, and is `None` otherwise: a clean checkout
//! still builds with `cargo build` alone, and its dashboard says how to build the bundle.
//! Watching the whole `dashboard/` folder reruns this when the bundle appears or changes.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=dashboard");
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard/dist");
    let files: Vec<PathBuf> = ["dashboard.js", "dashboard.css"]
        .iter()
        .map(|name| dist.join(name))
        .collect();
    let bundle = if files.iter().all(|f| f.is_file()) {
        // `{:?}` of a `str` is a valid Rust string literal (quotes and backslashes escaped).
        format!(
            "Some(Bundle {{ js: include_bytes!({:?}), css: include_bytes!({:?}) }})",
            files[0].display().to_string(),
            files[1].display().to_string()
        )
    } else {
        "None".to_owned()
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(
        out.join("dashboard_bundle.rs"),
        format!("/// The bundle, if it was built.\npub const BUNDLE: Option<Bundle> = {bundle};\n"),
    )
    .expect("writing dashboard_bundle.rs");
}
