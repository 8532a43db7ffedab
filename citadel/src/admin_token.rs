//! The admin API's bearer token, kept in the state directory beside the
//! CA's keys (`admin-token`, mode 0600): generated at the control plane's
//! first start, replaced by `bowline admin-token rotate`. The control plane
//! reads the file again when it changes, so a rotation needs no restart.
//!
//! ```text
//! first start: ensure ──► admin-token (32 random bytes, base64url) ──► printed once
//! bowline admin-token rotate ──► a new one, atomically ──► the running control plane reads it
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use crate::state::{self, KEY_MODE, StateDir};

/// The token's file in the state directory.
pub const FILE: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error("cannot generate a random admin token")]
    Random,
}

fn generate() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The token, made if the state directory has none: `Some(token)` when it
/// was made now (to be shown once), `None` when it was there.
pub fn ensure(state: &StateDir) -> Result<Option<String>, Error> {
    if state.read(FILE, KEY_MODE)?.is_some() {
        return Ok(None);
    }
    let token = generate()?;
    // Another process may have made one meanwhile: theirs stands.
    Ok(state
        .create(FILE, &format!("{token}\n"), KEY_MODE)?
        .then_some(token))
}

/// Replaces the token; the old one is refused from the next request on.
pub fn rotate(state: &StateDir) -> Result<String, Error> {
    let token = generate()?;
    state.replace(FILE, &format!("{token}\n"), KEY_MODE)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_private_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let first = ensure(&state).unwrap().expect("made at first start");
        assert_eq!(first.len(), 43, "32 bytes, base64url");
        assert_eq!(ensure(&state).unwrap(), None, "kept, not shown again");
        let path = dir.path().join(FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = rotate(&state).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), second);
    }
}
