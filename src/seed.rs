//! Contacts to fill a new store with: the bundled sample, or synthetic ones at scale.

use crate::key::ApiKey;

/// One contact as it is written into a new store.
#[derive(Debug, Clone, Default)]
pub struct SeedContact {
    pub id: Option<i64>,
    pub contact_type: String,
    pub display_name: String,
    pub sort_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_deleted: bool,
    pub api_key: Option<ApiKey>,
    pub uf_id: Option<i64>,
    /// Role names (a Standalone site's civicrm_role), for contacts with a CMS user.
    pub roles: Vec<String>,
}

/// assets/sample-contacts.csv, compiled in so the binary needs no files beside it.
const SAMPLE_CSV: &[u8] = include_bytes!("../assets/sample-contacts.csv");

#[derive(serde::Deserialize)]
struct SampleRow {
    id: i64,
    contact_type: String,
    first_name: String,
    last_name: String,
    display_name: String,
    sort_name: String,
    email: String,
    api_key: String,
    uf_id: String,
    is_deleted: u8,
    roles: String,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The bundled sample contacts.
pub fn sample_contacts() -> Result<Vec<SeedContact>, String> {
    let mut reader = csv::Reader::from_reader(SAMPLE_CSV);
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<SampleRow>().enumerate() {
        let row = row.map_err(|e| format!("bundled sample, row {}: {e}", i + 2))?;
        out.push(SeedContact {
            id: Some(row.id),
            contact_type: row.contact_type,
            display_name: row.display_name,
            sort_name: row.sort_name,
            first_name: non_empty(row.first_name),
            last_name: non_empty(row.last_name),
            email: non_empty(row.email),
            is_deleted: row.is_deleted != 0,
            api_key: non_empty(row.api_key).map(ApiKey::from_store),
            uf_id: row.uf_id.parse().ok(),
            roles: row
                .roles
                .split(';')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_has_what_the_demo_needs() {
        let all = sample_contacts().unwrap();
        assert!(all.len() >= 40);
        for kind in ["Individual", "Organization", "Household"] {
            assert!(all.iter().any(|c| c.contact_type == kind), "{kind}");
        }
        assert!(all.iter().any(|c| c.api_key.is_some()));
        assert!(all.iter().any(|c| c.api_key.is_none()));
        assert!(all.iter().any(|c| c.uf_id.is_some()));
        assert!(all.iter().any(|c| c.uf_id.is_none()));
        assert_eq!(all.iter().filter(|c| c.is_deleted).count(), 1);
        assert!(all.iter().any(|c| c.display_name.contains("\x1b[2J")));
        assert!(all.iter().any(|c| c.display_name.contains("\x1b]52;")));
        assert!(all
            .iter()
            .any(|c| !c.display_name.is_ascii() && !c.display_name.contains('\x1b')));
        for c in &all {
            if let Some(k) = &c.api_key {
                assert!(k.len() <= 32 && k.expose().chars().all(|c| c.is_ascii_alphanumeric()));
            }
        }
    }
}
