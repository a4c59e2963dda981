//! What a cv profile or `--store cv:...` resolved to.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CvOptions {
    /// The CiviCRM site folder, passed as `--cwd`.
    pub site_path: PathBuf,
    /// The `cv` program (a name looked up in PATH, or a path).
    pub cv_binary: PathBuf,
    /// The profile's `cv_user`: the CMS user cv acts as, with CiviCRM's own permission
    /// checks on (`cv pipe`'s `login`, or `--user=NAME` and `checkPermissions: true` per
    /// call). None: no login and no permission checks, the trust of `cv api4` itself.
    pub cv_user: Option<String>,
    pub timeout: Duration,
}
