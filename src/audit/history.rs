//! A key's life in the journal, found by its fingerprint: on which store and contact it was
//! set, when and by whom, and when it stopped being held there (replaced, revoked, undone).
//! What `civikey whose` tells about a key no store holds now.

use rusqlite::params;

use super::{AuditError, Journal};
use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::ContactId;

/// How a key stopped being held by a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Another key was assigned over it.
    Replaced,
    Revoked,
    /// An undo put the key before it back.
    Undone,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Replaced => "replaced",
            Ended::Revoked => "revoked",
            Ended::Undone => "undone",
        }
    }
}

/// One stretch of a key on one contact of one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpell {
    pub store: String,
    pub profile: Option<String>,
    pub contact_id: ContactId,
    pub contact_name: String,
    /// When civikey set it, and who; None when the journal only saw it replaced (set
    /// elsewhere).
    pub set: Option<(i64, String)>,
    /// When it stopped being held, how, and by whom; None while it is held (as far as the
    /// journal knows).
    pub ended: Option<(i64, Ended, String)>,
}

impl Journal {
    /// Every stretch the journal knows of `key` (changes that took effect only; lookups
    /// never count), oldest first, across every store of the journal.
    pub fn key_history(&self, key: &ApiKey) -> Result<Vec<KeySpell>, AuditError> {
        let fp = self.fingerprint(key);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT time, operator, store, profile, contact_id, contact_name, action,
                        old_fp IS ?1, new_fp IS ?1
                   FROM audit
                  WHERE action IN ('assign', 'revoke', 'undo')
                    AND (outcome = 'done' OR reconciled = 'applied')
                    AND (old_fp = ?1 OR new_fp = ?1)
                  ORDER BY id",
            )
            .map_err(AuditError::from_sql)?;
        // Read back as untrusted, like `entries`: every field reaches the screen.
        let safe = |text: String| SafeText::new(&text).to_string();
        let rows = stmt
            .query_map(params![fp], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    safe(r.get(1)?),
                    safe(r.get(2)?),
                    r.get::<_, Option<String>>(3)?.map(safe),
                    r.get::<_, i64>(4)? as ContactId,
                    safe(r.get(5)?),
                    r.get::<_, String>(6)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, bool>(8)?,
                ))
            })
            .map_err(AuditError::from_sql)?;
        let mut spells: Vec<KeySpell> = Vec::new();
        for row in rows {
            let (time, operator, store, profile, contact_id, contact_name, action, was, became) =
                row.map_err(AuditError::from_sql)?;
            if was {
                let open = spells
                    .iter_mut()
                    .rev()
                    .find(|s| s.store == store && s.contact_id == contact_id && s.ended.is_none());
                let how = match action.as_str() {
                    "revoke" => Ended::Revoked,
                    "undo" => Ended::Undone,
                    _ => Ended::Replaced,
                };
                let ended = Some((time, how, operator.clone()));
                match open {
                    Some(spell) => spell.ended = ended,
                    None => spells.push(KeySpell {
                        store: store.clone(),
                        profile: profile.clone(),
                        contact_id,
                        contact_name: contact_name.clone(),
                        set: None,
                        ended,
                    }),
                }
            }
            if became {
                spells.push(KeySpell {
                    store,
                    profile,
                    contact_id,
                    contact_name,
                    set: Some((time, operator)),
                    ended: None,
                });
            }
        }
        Ok(spells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor, Outcome};

    fn journal(dir: &std::path::Path, store: &str) -> Journal {
        let actor = Actor {
            operator: "alice".into(),
            store: store.into(),
            profile: Some(format!("p-{store}")),
            ..Actor::default()
        };
        Journal::open(dir, actor).unwrap()
    }

    fn change(
        j: &mut Journal,
        id: ContactId,
        action: Action,
        old: Option<&ApiKey>,
        new: Option<&ApiKey>,
        outcome: Outcome,
    ) {
        let r = j
            .intent(id, &SafeText::new("Ann"), action, old, new)
            .unwrap();
        j.outcome(r, outcome, None).unwrap();
    }

    #[test]
    fn a_keys_spells_are_found_by_fingerprint_with_how_they_ended() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = ApiKey::from_store("FirstKeyFirstKeyFirstKeyFirst001".into());
        let k2 = ApiKey::from_store("SecondKeySecondKeySecondKeySe002".into());
        let k3 = ApiKey::from_store("ThirdKeyThirdKeyThirdKeyThird003".into());
        let mut a = journal(dir.path(), "a");
        change(&mut a, 7, Action::Assign, None, Some(&k1), Outcome::Done);
        change(
            &mut a,
            7,
            Action::Assign,
            Some(&k1),
            Some(&k2),
            Outcome::Done,
        );
        // A failed change never counts; a lookup never either.
        change(
            &mut a,
            7,
            Action::Assign,
            Some(&k2),
            Some(&k3),
            Outcome::Failed,
        );
        a.lookup(&k2, &[7], "a", Some("p-a")).unwrap();
        drop(a);
        let mut b = journal(dir.path(), "b");
        // Set elsewhere, revoked by civikey.
        change(&mut b, 9, Action::Revoke, Some(&k2), None, Outcome::Done);
        let k1_life = b.key_history(&k1).unwrap();
        assert_eq!(k1_life.len(), 1);
        assert_eq!(k1_life[0].store, "a");
        assert_eq!(k1_life[0].contact_id, 7);
        assert_eq!(k1_life[0].set.as_ref().map(|s| s.1.as_str()), Some("alice"));
        assert_eq!(
            k1_life[0].ended.as_ref().map(|e| e.1),
            Some(Ended::Replaced)
        );
        let k2_life = b.key_history(&k2).unwrap();
        assert_eq!(k2_life.len(), 2, "{k2_life:?}");
        assert!(
            k2_life[0].set.is_some() && k2_life[0].ended.is_none(),
            "still held on a"
        );
        assert_eq!(k2_life[1].profile.as_deref(), Some("p-b"));
        assert!(k2_life[1].set.is_none());
        assert_eq!(k2_life[1].ended.as_ref().map(|e| e.1), Some(Ended::Revoked));
        assert!(b.key_history(&k3).unwrap().is_empty());
    }
}
