//! Scratch directories for the decoder properties that open engines (engine, server and pd
//! include this file; proto's own properties open none).

use std::path::Path;

/// A scratch directory, in memory where the machine has `/dev/shm`: these properties check
/// decoding, not durability, and the engines' fsyncs are free there.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("create a temporary directory")
}
