//! Where the shared test data is: for this crate's tests (through `common`) and for core's
//! (`#[path]`), which cannot use `common`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder of the shared test data (`../shared/fixtures/<sub>` next to the project, read in
/// place, never copied): `DM_FIXTURES` if set, else beside this checkout or, for a clone made
/// elsewhere (CI's fresh clone), beside the repository it was cloned from.
pub fn fixtures(sub: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("DM_FIXTURES") {
        return PathBuf::from(dir).join(sub);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let origin = Command::new("git")
        .args([
            "-C",
            &root.display().to_string(),
            "remote",
            "get-url",
            "origin",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    // The project is the manifest's folder or a parent of it (core's tests).
    let candidates: Vec<PathBuf> = root
        .ancestors()
        .take(2)
        .map(Path::to_path_buf)
        .chain(origin)
        .map(|p| p.join("../shared/fixtures").join(sub))
        .collect();
    candidates
        .iter()
        .find(|d| d.is_dir())
        .cloned()
        .unwrap_or_else(|| {
            panic!("the {sub} fixtures are expected at one of {candidates:?} (or set DM_FIXTURES)")
        })
}
