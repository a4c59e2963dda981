//! API keys: generation, validation, masking, and the secret type that carries them.

use std::fmt;

use base64::Engine as _;
use rand::TryRngCore;
use zeroize::Zeroizing;

/// Length of a generated key: `civicrm_contact.api_key` is `varchar(32)`.
pub const KEY_LEN: usize = 32;
/// Shortest key accepted from an operator (CiviCRM's advice: "20+ alphanumeric characters").
pub const MIN_MANUAL_LEN: usize = 20;

/// A CiviCRM API key. Secret: no Display, no Serialize, a redacted Debug, zeroized on drop.
/// The only way to read it is [`ApiKey::expose`], which is easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Zeroizing<String>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the operating system's random number generator failed: {0}; no key was made")]
    Rng(String),
    #[error("a key must be {min} to {max} characters long; this one has {got}")]
    Length { min: usize, max: usize, got: usize },
    #[error("a key may hold only the letters A-Z, a-z and the digits 0-9 (found a character outside them at position {0})")]
    Alphabet(usize),
    #[error("no key was given")]
    Empty,
}

impl ApiKey {
    /// A new key from the operating system's CSPRNG. Fails closed if the RNG fails.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_from(&mut OsKeySource)
    }

    /// A new key from `source`, by the recipe of CiviCRM's docs: random bytes -> base64 ->
    /// drop `+`, `/`, `=` -> keep 32, refilling until there are 32. Dropping characters of a
    /// uniform base64 stream leaves the other 62 uniform, so the result is unbiased.
    pub fn generate_from(source: &mut dyn KeySource) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new(String::with_capacity(KEY_LEN));
        let mut bytes = Zeroizing::new([0u8; 48]);
        let mut encoded = Zeroizing::new(String::with_capacity(64));
        while key.len() < KEY_LEN {
            source.fill(&mut bytes[..])?;
            encoded.clear();
            base64::engine::general_purpose::STANDARD.encode_string(&bytes[..], &mut encoded);
            for c in encoded.chars().filter(char::is_ascii_alphanumeric) {
                if key.len() == KEY_LEN {
                    break;
                }
                key.push(c);
            }
        }
        Ok(ApiKey(key))
    }

    /// A key typed or piped in by an operator: `min..=capacity` characters of [A-Za-z0-9].
    pub fn parse_manual(text: &str, capacity: usize) -> Result<Self, KeyError> {
        let trimmed = text.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(KeyError::Empty);
        }
        if let Some(pos) = trimmed.chars().position(|c| !c.is_ascii_alphanumeric()) {
            return Err(KeyError::Alphabet(pos + 1));
        }
        let got = trimmed.len();
        if !(MIN_MANUAL_LEN..=capacity).contains(&got) {
            return Err(KeyError::Length {
                min: MIN_MANUAL_LEN,
                max: capacity,
                got,
            });
        }
        Ok(ApiKey(Zeroizing::new(trimmed.to_string())))
    }

    /// Whatever a store holds, valid or not. It is still a secret.
    pub fn from_store(value: String) -> Self {
        ApiKey(Zeroizing::new(value))
    }

    /// The key itself. Call only where the key must leave civikey: a store write, the
    /// one-time popup, the stdout of a command whose job is to print it, the clipboard.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Equal as MySQL's `_ci` collations compare.
    pub fn eq_ignore_case(&self, other: &ApiKey) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    /// The last four characters, the only part of a key lists ever show, with the whole
    /// key's fingerprint (kept in memory) so "changed since seen" compares the whole key.
    pub fn hint(&self) -> KeyHint {
        KeyHint::of_whole(&self.0)
    }
}

/// The visible tail of a key, as lists show it: `••••3xQz`. Made by a store from the whole
/// key ([`KeyHint::of_whole`]), it also carries the whole key's [`Fingerprint`], so a key
/// changed meanwhile to one ending the same is still seen as changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHint {
    tail: String,
    whole: Option<Fingerprint>,
}

impl KeyHint {
    /// Keeps the last four characters of `value`; anything but [A-Za-z0-9] becomes `?` so a
    /// hostile value in a store cannot smuggle control characters through the hint. No
    /// fingerprint: use [`KeyHint::of_whole`] when the whole key is at hand.
    pub fn from_tail(value: &str) -> Self {
        // The last four characters alone: no copy of the rest of the key is made.
        let mut tail: Vec<char> = value
            .chars()
            .rev()
            .take(4)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
            .collect();
        tail.reverse();
        KeyHint {
            tail: tail.into_iter().collect(),
            whole: None,
        }
    }

    /// The hint of the whole key `key`: its tail and its fingerprint.
    pub fn of_whole(key: &str) -> Self {
        KeyHint {
            whole: Some(Fingerprint::of(key)),
            ..KeyHint::from_tail(key)
        }
    }

    /// A key as the MySQL store lists it, so that only its tail leaves the server: the
    /// last four characters, then the whole key's SHA-256 in hex (64 digits) when the
    /// server could compute it.
    pub fn from_tail_and_sha256(value: &str) -> Self {
        let split = value.len().saturating_sub(64);
        match value.get(split..).and_then(Fingerprint::from_hex) {
            Some(whole) if value.len() > 64 => KeyHint {
                whole: Some(whole),
                ..KeyHint::from_tail(&value[..split])
            },
            _ => KeyHint::from_tail(value),
        }
    }

    pub fn masked(&self) -> String {
        format!("••••{}", self.tail)
    }

    /// Whether `key` is the key this hint was made from: the whole key's fingerprint when
    /// the hint has one, else (a hint made from a tail alone) the last four characters.
    pub fn matches(&self, key: &ApiKey) -> bool {
        match &self.whole {
            Some(whole) => *whole == Fingerprint::of(key.expose()),
            None => self.tail == KeyHint::from_tail(key.expose()).tail,
        }
    }
}

/// The SHA-256 of a whole key, kept in memory only (Debug hides it, nothing writes it):
/// enough to tell two keys apart, nothing to log in with. A key of 20 or more random
/// characters cannot be found back from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(key: &str) -> Self {
        use sha2::{Digest, Sha256};
        Fingerprint(Sha256::digest(key.as_bytes()).into())
    }

    /// From 64 hex digits (MySQL's `SHA2(api_key, 256)`); `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

/// Where key material comes from. The OS CSPRNG in production; a seeded generator in
/// tests so that snapshots are stable.
pub trait KeySource: Send {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError>;
}

/// The operating system's CSPRNG (getrandom).
pub struct OsKeySource;

impl KeySource for OsKeySource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError> {
        rand::rngs::OsRng
            .try_fill_bytes(buf)
            .map_err(|e| KeyError::Rng(e.to_string()))
    }
}

/// A deterministic source for tests and snapshots. Never used to make real keys.
pub struct SeededKeySource(rand::rngs::StdRng);

impl SeededKeySource {
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        SeededKeySource(rand::rngs::StdRng::seed_from_u64(seed))
    }
}

impl KeySource for SeededKeySource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError> {
        use rand::RngCore;
        self.0.fill_bytes(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    #[test]
    fn generated_keys_have_length_and_alphabet() {
        for _ in 0..2000 {
            let key = ApiKey::generate().expect("os rng");
            assert_eq!(key.len(), KEY_LEN);
            assert!(key.expose().chars().all(|c| ALPHABET.contains(c)));
        }
    }

    #[test]
    fn generated_keys_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            assert!(seen.insert(ApiKey::generate().unwrap().expose().to_string()));
        }
    }

    /// 62 symbols, 61 degrees of freedom. The 0.999 quantile of chi-square(61) is 100.9; an
    /// unbiased generator fails this about once in a thousand runs, a recipe that maps
    /// `+`/`/` onto letters (a classic bias) fails it every time.
    #[test]
    fn character_distribution_is_uniform_chi_square() {
        let mut counts = [0u64; 62];
        let keys = 20_000;
        for _ in 0..keys {
            let key = ApiKey::generate().unwrap();
            for c in key.expose().chars() {
                counts[ALPHABET.find(c).unwrap()] += 1;
            }
        }
        let total = (keys * KEY_LEN) as f64;
        let expected = total / 62.0;
        let chi2: f64 = counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 100.9, "chi-square {chi2} over 61 degrees of freedom");
    }

    #[test]
    fn the_test_above_can_fail_on_a_biased_recipe() {
        // Replace '+' and '/' by 'A' instead of dropping them: 'A' becomes about 3x as likely.
        let mut counts = [0u64; 62];
        let mut src = SeededKeySource::new(7);
        for _ in 0..20_000 {
            let mut bytes = [0u8; 24];
            src.fill(&mut bytes).unwrap();
            let enc = base64::engine::general_purpose::STANDARD.encode(bytes);
            for c in enc
                .chars()
                .map(|c| if c == '+' || c == '/' { 'A' } else { c })
            {
                counts[ALPHABET.find(c).unwrap()] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 62.0;
        let chi2: f64 = counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 > 100.9, "biased recipe passed with chi-square {chi2}");
    }

    struct FailingSource;
    impl KeySource for FailingSource {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), KeyError> {
            Err(KeyError::Rng("entropy source unavailable".into()))
        }
    }

    #[test]
    fn rng_failure_fails_closed() {
        let err = ApiKey::generate_from(&mut FailingSource).unwrap_err();
        assert!(matches!(err, KeyError::Rng(_)));
    }

    #[test]
    fn seeded_source_is_deterministic() {
        let a = ApiKey::generate_from(&mut SeededKeySource::new(1)).unwrap();
        let b = ApiKey::generate_from(&mut SeededKeySource::new(1)).unwrap();
        let c = ApiKey::generate_from(&mut SeededKeySource::new(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn debug_shows_no_key() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?} {:?} {:#?}", Some(&key), vec![key.clone()]);
        assert!(!shown.contains(key.expose()));
        assert!(!shown.contains(&key.expose()[..8]));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn manual_keys_are_validated() {
        assert!(ApiKey::parse_manual("abcdefghij0123456789", 32).is_ok());
        assert!(ApiKey::parse_manual("abcdefghij0123456789\n", 32).is_ok());
        assert_eq!(
            ApiKey::parse_manual("short1234", 32),
            Err(KeyError::Length {
                min: 20,
                max: 32,
                got: 9
            })
        );
        assert_eq!(
            ApiKey::parse_manual(&"a".repeat(33), 32),
            Err(KeyError::Length {
                min: 20,
                max: 32,
                got: 33
            })
        );
        assert_eq!(
            ApiKey::parse_manual("abcdefghij 0123456789", 32),
            Err(KeyError::Alphabet(11))
        );
        assert_eq!(ApiKey::parse_manual("", 32), Err(KeyError::Empty));
        assert_eq!(
            ApiKey::parse_manual("abcdefghij0123456789é", 40),
            Err(KeyError::Alphabet(21))
        );
    }

    #[test]
    fn hint_masks_and_neutralises() {
        let key = ApiKey::from_store("abcdefghijklmnopqrstuvwxyz123xQz".into());
        assert_eq!(key.hint().masked(), "••••3xQz");
        assert_eq!(KeyHint::from_tail("a\x1b[2J").masked(), "••••??2J");
        assert_eq!(KeyHint::from_tail("ab").masked(), "••••ab");
    }

    #[test]
    fn a_hint_matches_the_whole_key_not_its_tail() {
        let key = ApiKey::from_store("AaaaBbbbCcccDdddEeeeFfffGggg0001".into());
        let same_tail = ApiKey::from_store("ZzzzYyyyXxxxWwwwVvvvUuuuTttt0001".into());
        let hint = key.hint();
        assert_eq!(hint.masked(), same_tail.hint().masked());
        assert!(hint.matches(&key));
        assert!(
            !hint.matches(&same_tail),
            "a key ending the same is another key"
        );
        assert!(!hint.matches(&ApiKey::from_store(key.expose().to_lowercase())));
        assert!(format!("{hint:?}").contains("Fingerprint(..)"), "{hint:?}");
        // As MySQL lists it: the tail, then SHA2(api_key, 256).
        let listed = format!(
            "0001{}",
            "6c5a2a9e3ac9b50f4b6a0e1f1bd8b69a0c0e4a4e1b2f3c4d5e6f708192a3b4c5"
        );
        let hex: String = {
            use sha2::{Digest, Sha256};
            Sha256::digest(key.expose().as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let from_mysql = KeyHint::from_tail_and_sha256(&format!("0001{hex}"));
        assert_eq!(from_mysql, hint);
        assert!(from_mysql.matches(&key) && !from_mysql.matches(&same_tail));
        assert!(!KeyHint::from_tail_and_sha256(&listed).matches(&key));
        // A server that could not hash: the tail alone, compared as a tail.
        assert!(KeyHint::from_tail_and_sha256("0001").matches(&same_tail));
    }

    #[test]
    fn case_insensitive_comparison() {
        let a = ApiKey::from_store("AbCd".into());
        let b = ApiKey::from_store("aBcD".into());
        assert!(a.eq_ignore_case(&b));
        assert_ne!(a, b);
    }
}
