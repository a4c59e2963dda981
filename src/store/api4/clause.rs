//! API v4 request parameters as both API v4 stores send them: where clauses (the name,
//! email and id searches, the keyset condition, the compare-and-set condition), `get` and
//! `update` params, orders. Typed and serialized in place, so a request borrows its keys
//! instead of copying them into JSON strings.

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::key::ApiKey;
use crate::store::{like_prefix, name_splits, ContactId, Cursor, SORTED_FIRST_NAME_CHARS};

/// API v4 hides trashed contacts unless the where clause names `is_deleted`; this matches
/// both, for the calls that must see every contact.
pub(crate) const ANY_DELETED: &[u64] = &[0, 1];

/// An API v4 where clause: `[field, op, value]`, `[field, "IS NULL"]`, `["OR", [...]]`,
/// `["AND", [...]]`.
#[derive(Clone, Debug)]
pub(crate) enum Clause<'a> {
    Cmp(&'static str, &'static str, Val<'a>),
    IsNull(&'static str),
    IsNotNull(&'static str),
    Or(Vec<Clause<'a>>),
    And(Vec<Clause<'a>>),
}

/// A value in a where clause.
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(u64),
    Ints(&'static [u64]),
    IntList(Vec<u64>),
    Text(String),
    /// A key, borrowed so the request holds no extra copy of it.
    Secret(&'a str),
    /// Keys, borrowed likewise.
    Secrets(Vec<&'a str>),
}

/// An API v4 explicit join: `[entity AS alias, type, [on-condition]]`.
pub(crate) type Join = (&'static str, &'static str, [&'static str; 3]);

/// The CMS user link. A contact has at most one per domain, so this may repeat a contact
/// on multi-domain sites; [`super::rows::merge_rows`] folds the repeats. Where the caller
/// may not read users (CiviCRM leaves the joined fields out) the link is unknown.
pub(crate) const UF_JOIN: Join = (
    "UFMatch AS uf_match",
    "LEFT",
    ["uf_match.contact_id", "=", "id"],
);

/// An orderBy: `{"sort_name":"ASC","id":"ASC"}`. A struct, so the keys keep their order
/// (serde_json's maps would sort them).
#[derive(Serialize, Clone, Copy, Debug)]
pub(crate) struct SortOrder {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_name: Option<&'static str>,
    pub id: &'static str,
}

/// The list order: sort name, then id for the ties (Smith, Sam twice), so pages are stable.
pub(crate) const LIST_ORDER: SortOrder = SortOrder {
    sort_name: Some("ASC"),
    id: "ASC",
};

/// A sorted first-name branch's order: no index of civicrm_contact gives it (sort_name
/// ascending, id descending), so MariaDB reads the branch's own index range and sorts it,
/// instead of walking the sort-name index from the start reading every row until a page
/// of first names is found (`car` at 1M: 96,000 rows walked before the first; 210-400 ms
/// against 30-60 ms). The ids within the last sort name are read again with the page.
pub(crate) const SORTED_ORDER: SortOrder = SortOrder {
    sort_name: Some("ASC"),
    id: "DESC",
};

/// By id: key holders' offset pages, and a sort name's contacts.
pub(crate) const ID_ORDER: SortOrder = SortOrder {
    sort_name: None,
    id: "ASC",
};

/// `get` parameters, in API v4's JSON shape.
#[derive(Serialize, Debug)]
pub(crate) struct GetParams<'a> {
    pub select: &'static [&'static str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<Join>,
    #[serde(rename = "where")]
    pub where_: Vec<Clause<'a>>,
    #[serde(rename = "orderBy", skip_serializing_if = "Option::is_none")]
    pub order_by: Option<SortOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl<'a> GetParams<'a> {
    /// `select` where `where_`, unordered, unlimited, no join.
    pub fn new(select: &'static [&'static str], where_: Vec<Clause<'a>>) -> Self {
        GetParams {
            select,
            join: Vec::new(),
            where_,
            order_by: None,
            limit: None,
            offset: None,
        }
    }

    pub fn order(mut self, order: SortOrder) -> Self {
        self.order_by = Some(order);
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit as u64);
        self
    }

    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// `Contact.update` parameters: the compare-and-set of one contact's key.
#[derive(Serialize, Debug)]
pub(crate) struct UpdateParams<'a> {
    #[serde(rename = "where")]
    pub where_: Vec<Clause<'a>>,
    pub values: KeyValue<'a>,
}

/// `{"api_key": "NEW"}`, or `null` to revoke.
#[derive(Serialize, Debug)]
pub(crate) struct KeyValue<'a> {
    pub api_key: Option<&'a str>,
}

impl<'a> UpdateParams<'a> {
    /// Contact `id`'s key set to `new` where it is still `expected` (as MySQL compares:
    /// case-insensitively, so the caller checks the exact key first).
    pub fn swap(id: ContactId, expected: Option<&'a ApiKey>, new: Option<&'a ApiKey>) -> Self {
        UpdateParams {
            where_: vec![by_id(id), any_deleted(), key_is(expected)],
            values: KeyValue {
                api_key: new.map(ApiKey::expose),
            },
        }
    }
}

/// Both live and trashed contacts.
pub(crate) fn any_deleted() -> Clause<'static> {
    Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED))
}

/// Trashed contacts too, or only live ones. Always named: API v4 hides deleted contacts
/// unless is_deleted is in the where.
pub(crate) fn deleted(include_deleted: bool) -> Clause<'static> {
    if include_deleted {
        any_deleted()
    } else {
        Clause::Cmp("is_deleted", "=", Val::Int(0))
    }
}

pub(crate) fn by_id(id: ContactId) -> Clause<'static> {
    Clause::Cmp("id", "=", Val::Int(id))
}

pub(crate) fn by_ids(ids: &[ContactId]) -> Clause<'static> {
    Clause::Cmp("id", "IN", Val::IntList(ids.to_vec()))
}

/// The contacts after `after` in list order (sort name, then id; NULL sort names first,
/// as MariaDB sorts them). After a NULL sort name: the NULL sort names of higher ids, and
/// every name (`sort_name > ''` would lose the rest of the NULLs).
pub(crate) fn after(sort_name: Option<&str>, id: ContactId) -> Clause<'static> {
    match sort_name {
        None => Clause::Or(vec![
            Clause::And(vec![
                Clause::IsNull("sort_name"),
                Clause::Cmp("id", ">", Val::Int(id)),
            ]),
            Clause::IsNotNull("sort_name"),
        ]),
        Some(name) => Clause::Or(vec![
            Clause::Cmp("sort_name", ">", Val::Text(name.to_string())),
            Clause::And(vec![
                Clause::Cmp("sort_name", "=", Val::Text(name.to_string())),
                Clause::Cmp("id", ">", Val::Int(id)),
            ]),
        ]),
    }
}

/// A keystroke search's conditions besides its branch: deleted or not, and after the
/// cursor. `who` names the store in the refusal of an offset cursor.
pub(crate) fn keystroke_common(
    include_deleted: bool,
    cursor: Option<&Cursor>,
    who: &str,
) -> Result<Vec<Clause<'static>>, crate::store::StoreError> {
    let mut common = vec![deleted(include_deleted)];
    match cursor {
        None => {}
        Some(Cursor::After { sort_name, id }) => common.push(after(sort_name.as_deref(), *id)),
        Some(Cursor::Offset(_)) => {
            return Err(crate::store::StoreError::invalid(format!(
                "a name search {who} pages by key, not by offset"
            )))
        }
    }
    Ok(common)
}

/// "The contact's key is `expected`" (exactness is the caller's to check: MySQL compares
/// case-insensitively). No key may be NULL or an empty string, as CiviCRM treats it.
pub(crate) fn key_is(expected: Option<&ApiKey>) -> Clause<'_> {
    match expected {
        Some(k) => Clause::Cmp("api_key", "=", Val::Secret(k.expose())),
        None => Clause::Or(vec![
            Clause::IsNull("api_key"),
            Clause::Cmp("api_key", "=", Val::Text(String::new())),
        ]),
    }
}

/// The contacts that hold a key (an empty string is none), deleted ones too: a page of
/// key holders, read by id.
pub(crate) fn key_holders() -> Vec<Clause<'static>> {
    vec![
        Clause::IsNotNull("api_key"),
        Clause::Cmp("api_key", "!=", Val::Text(String::new())),
        any_deleted(),
    ]
}

/// A field's value starts with `text` (its own wildcards taken literally).
pub(crate) fn starts(field: &'static str, text: &str) -> Clause<'static> {
    Clause::Cmp(field, "LIKE", Val::Text(like_prefix(text, '\\')))
}

/// A field's value is `text`, as the site's collation compares (the exact email).
pub(crate) fn equals(field: &'static str, text: &str) -> Clause<'static> {
    Clause::Cmp(field, "=", Val::Text(text.to_string()))
}

/// How a keystroke's branch is read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reading {
    /// In list order (sort name, id), one page: MariaDB walks the sort-name index and stops
    /// at the page's end. Right for the sort-name prefix (a range of that index), the split
    /// pairs (narrow: MariaDB reads their own index) and a one-letter first name (its
    /// contacts are everywhere in the list: at most 90 ms for any letter at 1M).
    Walk,
    /// A first-name prefix of two letters or more: as many contacts as some thousands,
    /// which may all sort late (`car`, `ji`: 96,000 rows walked before the first), so its
    /// own index range is read sorted by [`SORTED_ORDER`] (40 ms for `car`'s 12,000;
    /// 130 ms for `jo`'s 34,000, the most any two letters have at 1M), and its last sort
    /// name's contacts read again with the page.
    Sort,
}

/// The keystroke name search as separate where clauses, each one index range: the sort
/// name and first name prefixes, and the first/last pairs of each split in both orders.
/// The last, organisation and household name prefixes are not sent on their own:
/// CiviCRM's sort names start with them ("Last, First", the organisation's or household's
/// name), so the sort-name range holds those contacts, and MariaDB answers such a branch,
/// ordered by sort name, by walking the whole sort-name index when its matches sort late
/// (`last_name LIKE 'z%'`: 3.5 s at 1M). A site with another sort name format misses
/// those. One OR of all the prefixes would make MariaDB walk the sort-name index from the
/// start testing every row (2-3 s at 1M for `smith`).
pub(crate) fn name_branches(text: &str) -> Vec<(Clause<'static>, Reading)> {
    let first_name = if text.chars().count() >= SORTED_FIRST_NAME_CHARS {
        Reading::Sort
    } else {
        Reading::Walk
    };
    let mut out = vec![
        (starts("sort_name", text), Reading::Walk),
        (starts("first_name", text), first_name),
    ];
    out.extend(split_pairs(text).into_iter().map(|c| (c, Reading::Walk)));
    out
}

/// The name search ([`crate::store::name_matches`]) as one where clause, on the columns
/// CiviCRM indexes: sort, first, last, organisation, household name prefixes, a first and
/// a last name prefix in either order for each split of a text of several words, and with
/// `deep` a word inside the display name (no index: never sent per keystroke).
pub(crate) fn name_where(text: &str, deep: bool) -> Clause<'static> {
    let mut any: Vec<Clause<'static>> = [
        "sort_name",
        "first_name",
        "last_name",
        "organization_name",
        "household_name",
    ]
    .into_iter()
    .map(|field| starts(field, text))
    .collect();
    any.extend(split_pairs(text));
    if deep {
        any.push(Clause::Cmp(
            "display_name",
            "LIKE",
            Val::Text(format!("% {}", like_prefix(text, '\\'))),
        ));
    }
    Clause::Or(any)
}

/// For each split of a text of several words: a first and a last name prefix, in either
/// order (each pair one index range on CiviCRM's name indexes).
fn split_pairs(text: &str) -> Vec<Clause<'static>> {
    let mut out = Vec::new();
    for (a, b) in name_splits(text) {
        for (first, last) in [(a, b), (b, a)] {
            out.push(Clause::And(vec![
                starts("first_name", first),
                starts("last_name", last),
            ]));
        }
    }
    out
}

/// A sorted branch AND its last sort name (an equality on the sort-name index): that
/// name's contacts, of which the branch's rows may lack the lowest ids.
pub(crate) fn boundary<'a>(branch: &Clause<'a>, last: Option<&str>) -> Clause<'a> {
    let name = match last {
        Some(name) => Clause::Cmp("sort_name", "=", Val::Text(name.to_string())),
        None => Clause::IsNull("sort_name"),
    };
    Clause::And(vec![branch.clone(), name])
}

impl Serialize for Clause<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Clause::Cmp(field, op, value) => {
                let mut seq = s.serialize_seq(Some(3))?;
                seq.serialize_element(field)?;
                seq.serialize_element(op)?;
                seq.serialize_element(value)?;
                seq.end()
            }
            Clause::IsNull(field) | Clause::IsNotNull(field) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(field)?;
                seq.serialize_element(if matches!(self, Clause::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                })?;
                seq.end()
            }
            Clause::Or(clauses) | Clause::And(clauses) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(if matches!(self, Clause::Or(_)) {
                    "OR"
                } else {
                    "AND"
                })?;
                seq.serialize_element(clauses)?;
                seq.end()
            }
        }
    }
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Int(n) => s.serialize_u64(*n),
            Val::Ints(list) => list.serialize(s),
            Val::IntList(list) => list.serialize(s),
            Val::Text(text) => s.serialize_str(text),
            Val::Secret(key) => s.serialize_str(key),
            Val::Secrets(keys) => keys.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_api_v4_shape() {
        let key = ApiKey::from_store("OldOldOldOldOldOldOld1".into());
        let params = UpdateParams::swap(7, Some(&key), None);
        assert_eq!(
            serde_json::to_string(&params).unwrap(),
            r#"{"where":[["id","=",7],["is_deleted","IN",[0,1]],["api_key","=","OldOldOldOldOldOldOld1"]],"values":{"api_key":null}}"#
        );
        let get = GetParams {
            join: vec![(
                "UFMatch AS uf_match",
                "LEFT",
                ["uf_match.contact_id", "=", "id"],
            )],
            ..GetParams::new(&["id", "api_key"], vec![starts("sort_name", "100%_a\\")])
                .order(LIST_ORDER)
                .limit(8)
                .offset(14)
        };
        assert_eq!(
            serde_json::to_string(&get).unwrap(),
            r#"{"select":["id","api_key"],"join":[["UFMatch AS uf_match","LEFT",["uf_match.contact_id","=","id"]]],"where":[["sort_name","LIKE","100\\%\\_a\\\\%"]],"orderBy":{"sort_name":"ASC","id":"ASC"},"limit":8,"offset":14}"#
        );
    }

    /// After a NULL sort name the next page is the NULLs of higher ids, then every name:
    /// `sort_name > ''` (a NULL taken for "") would lose the rest of the NULLs.
    #[test]
    fn the_keyset_condition_after_a_null_sort_name_keeps_the_other_nulls() {
        assert_eq!(
            serde_json::to_string(&after(None, 61)).unwrap(),
            r#"["OR",[["AND",[["sort_name","IS NULL"],["id",">",61]]],["sort_name","IS NOT NULL"]]]"#
        );
        assert_eq!(
            serde_json::to_string(&after(Some(""), 61)).unwrap(),
            r#"["OR",[["sort_name",">",""],["AND",[["sort_name","=",""],["id",">",61]]]]]"#
        );
    }
}
