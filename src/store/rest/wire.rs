//! HTTP and the API v4 form body: one POST per call (or per multi-call), credentials in
//! headers only, answers read up to a size cap into a [`Reply`] that is wiped when dropped.

use std::io::Read;

use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::errors::{judge_answer, shown, unknown_after_ok, Call, Exchange};
use super::reply::{Reply, MAX_BODY, MAX_ERROR_BODY};
use super::RestStore;
use crate::sanitize::SafeText;
use crate::secret::Secret;
use crate::store::api4::rows::IdRow;
use crate::store::{ContactId, StoreError};

impl RestStore {
    /// One API v4 call. `secrets` are values in `params` that must not come back in an error
    /// message (CiviCRM error texts may quote the request).
    pub(super) fn call(
        &self,
        entity: &str,
        action: &str,
        params: &impl Serialize,
        kind: Call,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        let url = self.url(entity, action);
        let body = form_field("params", &params_text(params)?);
        self.post(&url, &body, kind, secrets)
    }

    /// One POST of a form `body` to `url`, its answer judged.
    pub(super) fn post(
        &self,
        url: &str,
        body: &str,
        kind: Call,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        let answer = self.send(url, body, kind)?;
        self.judged(url, kind, &answer, secrets)
    }

    /// The admin key and the site key: hidden from every text the site sends back.
    fn own_secrets(&self) -> Vec<&str> {
        std::iter::once(self.api_key.expose())
            .chain(self.site_key.as_ref().map(Secret::expose))
            .collect()
    }

    /// `answer` to a request to `url` judged: the API v4 result, or the error it means,
    /// with `secrets` (the request's) and the store's own hidden from the site's text.
    fn judged(
        &self,
        url: &str,
        kind: Call,
        answer: &RawAnswer,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        let mut hidden = secrets.to_vec();
        hidden.extend(self.own_secrets());
        let exchange = Exchange {
            url,
            kind,
            secrets: hidden,
            site_key_sent: self.site_key.is_some(),
        };
        judge_answer(
            &exchange,
            answer.status,
            &answer.content_type,
            answer.location.as_deref(),
            &answer.bytes,
            answer.too_big,
        )
    }

    /// Sends one request; the answer as it came, read up to the size cap.
    fn send(&self, url: &str, body: &str, kind: Call) -> Result<RawAnswer, StoreError> {
        let auth = Zeroizing::new(format!("Bearer {}", self.api_key.expose()));
        let mut request = self
            .agent
            .post(url)
            .header("X-Civi-Auth", auth.as_str())
            .header("X-Requested-With", "XMLHttpRequest")
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(site_key) = &self.site_key {
            request = request.header("X-Civi-Key", site_key.expose());
        }
        let mut response = request
            .send(body.as_bytes())
            .map_err(|e| self.transport_error(e, kind))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let location = response.headers().get("location").map(|v| {
            shown(
                SafeText::from_bytes(v.as_bytes()).as_str(),
                &self.own_secrets(),
            )
        });
        let limit = if status == 200 {
            MAX_BODY
        } else {
            MAX_ERROR_BODY
        };
        // Read one byte past the limit to tell "exactly at the cap" from "over it".
        let reader = response.body_mut().with_config().reader().take(limit + 1);
        let bytes =
            read_wiped(reader).map_err(|e| self.transport_error(ureq::Error::from(e), kind))?;
        let too_big = bytes.len() as u64 > limit;
        Ok(RawAnswer {
            status,
            content_type,
            location,
            bytes,
            too_big,
        })
    }

    fn transport_error(&self, e: ureq::Error, kind: Call) -> StoreError {
        use std::io::ErrorKind as K;
        use ureq::Error as E;
        use ureq::Timeout as T;
        let base = &self.base;
        let secs = self.timeout.as_secs_f64();
        // Failures that can only happen before the request left this machine: nothing was
        // applied, whatever the call.
        let before_send = match &e {
            E::HostNotFound | E::ConnectionFailed | E::Tls(_) | E::Rustls(_) => true,
            E::Timeout(T::Resolve | T::Connect) => true,
            E::Io(io) => matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::AddrNotAvailable
                    | K::NetworkUnreachable
                    | K::HostUnreachable
            ),
            _ => false,
        };
        if before_send {
            return StoreError::unreachable(format!("cannot connect to {base}: {e}"));
        }
        if let E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) = e {
            let why = format!("{base} sent an oversized answer ({e})");
            return match kind {
                Call::Read => StoreError::bad_data(why),
                Call::Write => unknown_after_ok(&why),
            };
        }
        match (kind, &e) {
            // A timeout of the whole request (global) may also fire while connecting; for an
            // update that case cannot be told apart, so it is reported as unknown too.
            (Call::Write, _) => StoreError::OutcomeUnknown(SafeText::new(&format!(
                "the update was sent to {base} but no complete answer came back ({e}); it may \
                 or may not have been applied: look at the contact again before retrying"
            ))),
            (Call::Read, E::Timeout(_)) => StoreError::Timeout(SafeText::new(&format!(
                "{base} did not answer within {secs} s"
            ))),
            (Call::Read, _) => StoreError::unreachable(format!("{base}: {e}")),
        }
    }

    /// The login check: Contact.get where id = 'user_contact_id', logged in with this
    /// store's key. Ok(Some(id)): logged in as contact id; Ok(None): logged in, but the
    /// contact cannot read its own record; Err(text): refused (authx's own words on 401).
    pub(crate) fn whoami(&self) -> Result<Option<ContactId>, String> {
        let url = self.url("Contact", "get");
        let params = json!({
            "select": ["id"],
            "where": [["id", "=", "user_contact_id"]],
            "limit": 1,
        });
        let body = form_field("params", &params_text(&params).map_err(|e| e.to_string())?);
        let answer = self
            .send(&url, &body, Call::Read)
            .map_err(|e| e.to_string())?;
        if answer.status == 401 {
            let text = String::from_utf8_lossy(&answer.bytes);
            return Err(shown(text.trim(), &self.own_secrets()));
        }
        let reply = self
            .judged(&url, Call::Read, &answer, &[])
            .map_err(|e| e.to_string())?;
        let rows: Vec<IdRow> = reply.rows().map_err(|e| e.to_string())?;
        Ok(rows.first().map(|r| r.id))
    }
}

/// An HTTP answer as it came: lowercased content type, redirect target, body up to the cap.
struct RawAnswer {
    status: u16,
    content_type: String,
    location: Option<String>,
    bytes: Zeroizing<Vec<u8>>,
    too_big: bool,
}

/// Everything `reader` gives, in memory that is wiped when dropped, and wiped when it
/// grows too ([`crate::secret::extend_wiped`]): an answer may hold keys.
fn read_wiped(mut reader: impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new(vec![0u8; 64 * 1024]);
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => crate::secret::extend_wiped(&mut bytes, &chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `params` as JSON, kept in zeroized memory since it may carry keys (serialized once
/// into room reserved up front, so no reallocation leaves a copy behind).
pub(super) fn params_text(params: &impl Serialize) -> Result<Zeroizing<String>, StoreError> {
    let mut json = Zeroizing::new(Vec::with_capacity(8192));
    serde_json::to_writer(&mut *json, params)
        .map_err(|e| StoreError::invalid(format!("params: {e}")))?;
    let text = String::from_utf8(std::mem::take(&mut *json))
        .map_err(|e| StoreError::invalid(format!("params: {e}")))?;
    Ok(Zeroizing::new(text))
}

/// `name=JSON`, form-encoded.
pub fn form_field(name: &str, json: &str) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::with_capacity(json.len() * 3 / 2 + name.len() + 1));
    body.push_str(name);
    body.push('=');
    for b in json.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                body.push(b as char)
            }
            b' ' => body.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                body.push('%');
                body.push(HEX[usize::from(b >> 4)] as char);
                body.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives at most `step` bytes a call, as a socket does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn answers_of_any_size_come_whole() {
        for size in [0, 1, 65_535, 65_536, 65_537, 300_001] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for step in [1 << 20, 7_000, 65_536] {
                let read = read_wiped(Trickle { data: &data, step }).unwrap();
                assert_eq!(&read[..], &data[..], "size {size}, step {step}");
            }
        }
    }

    #[test]
    fn the_cap_is_read_one_byte_past() {
        let data = vec![b'x'; 100_000];
        let read = read_wiped(
            Trickle {
                data: &data,
                step: 4096,
            }
            .take(70_001),
        )
        .unwrap();
        assert_eq!(read.len(), 70_001);
    }
}
