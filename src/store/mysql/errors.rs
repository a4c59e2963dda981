//! The driver's errors as the store's: what the server or the connection said, mapped
//! onto [`StoreError`]'s kinds, and "outcome unknown" once a write may have been sent.

use crate::sanitize::SafeText;
use crate::store::StoreError;

/// Whether a failed call happened before a write could have reached the server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Read,
    /// The UPDATE was sent: a lost connection leaves its outcome unknown.
    WriteSent,
}

/// Whether the connection is unusable after `e` (it must be reopened).
pub(super) fn connection_lost(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) | mysql::Error::DriverError(_) => {
            true
        }
        mysql::Error::TlsError(_) => true,
        mysql::Error::MySqlError(e) => matches!(e.code, 1053 | 1927 | 4031),
        mysql::Error::UrlError(_)
        | mysql::Error::FromValueError(_)
        | mysql::Error::FromRowError(_) => false,
    }
}

/// Maps a driver error onto the store's error kinds. Server messages are untrusted text
/// (the constructors sanitize them); none of them carries the password.
pub(super) fn map_error(e: mysql::Error, location: &str, phase: Phase) -> StoreError {
    let text = |message: String| SafeText::new(&format!("{location}: {message}"));
    if phase == Phase::WriteSent && connection_lost(&e) {
        return StoreError::OutcomeUnknown(text(format!(
            "the connection failed after the key change was sent ({e}); it may or may not have been applied. \
             Check the contact's key before trying again"
        )));
    }
    match e {
        mysql::Error::MySqlError(err) => {
            let message = format!("server error {}: {}", err.code, err.message);
            match err.code {
                // Access denied to the database, for the user, for a table, for a column;
                // host not allowed; an expired password.
                1044 | 1045 | 1142 | 1143 | 1130 | 1227 | 1820 | 1862 => StoreError::PermissionDenied(text(
                    if err.code == 1045 {
                        format!("{message}. Check the user and the password (the profile's password_file or password_env, or ~/.my.cnf)")
                    } else {
                        message
                    },
                )),
                // --read-only server, read-only transaction.
                1290 | 1792 | 1836 => StoreError::ReadOnly(text(message)),
                1049 => StoreError::Invalid(text(format!("{message} (is the database name in the address right?)"))),
                1146 => StoreError::Invalid(text(format!(
                    "{message} (is this a CiviCRM database, and is table_prefix right?)"
                ))),
                1406 => StoreError::Invalid(text(format!("{message}; nothing was written"))),
                1205 | 1213 => StoreError::Timeout(text(format!(
                    "{message}; another session holds the row, the statement was rolled back and nothing was written"
                ))),
                1317 | 1969 | 3024 => StoreError::Timeout(text(message)),
                1040 | 1053 | 1927 | 4031 => StoreError::Unreachable(text(message)),
                _ => StoreError::BadData(text(message)),
            }
        }
        mysql::Error::IoError(io) => match io.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                StoreError::Timeout(text(format!("no answer within the timeout ({io})")))
            }
            _ => StoreError::Unreachable(text(format!("connection failed: {io}"))),
        },
        mysql::Error::DriverError(driver) => match driver {
            mysql::DriverError::ConnectTimeout | mysql::DriverError::Timeout => {
                StoreError::Timeout(text(format!("no answer within the timeout ({driver})")))
            }
            mysql::DriverError::CouldNotConnect(_) => {
                StoreError::Unreachable(text(format!("cannot connect: {driver}")))
            }
            mysql::DriverError::TlsNotSupported => StoreError::Unreachable(text(
                "the profile requires TLS but the server does not offer it; nothing was sent"
                    .to_string(),
            )),
            other => StoreError::Unreachable(text(format!("protocol failure: {other}"))),
        },
        mysql::Error::TlsError(tls) => StoreError::Unreachable(text(format!("TLS failed: {tls}"))),
        mysql::Error::CodecError(codec) => {
            // Reads go through the packet codec, so a read timeout arrives wrapped in it.
            let io_kind = std::error::Error::source(&codec)
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            match io_kind {
                Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    StoreError::Timeout(text(format!("no answer within the timeout ({codec})")))
                }
                _ => StoreError::Unreachable(text(format!("connection failed: {codec}"))),
            }
        }
        mysql::Error::UrlError(url) => StoreError::Invalid(text(url.to_string())),
        mysql::Error::FromValueError(_) | mysql::Error::FromRowError(_) => {
            StoreError::BadData(text("a value of an unexpected type".to_string()))
        }
    }
}
