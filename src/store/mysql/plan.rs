//! How a search is planned on CiviCRM's own indexes: the name condition, the ranges of
//! the name indexes a name search reads and their limits, the keyset cursor, and the
//! union of index-range SELECTs a page is merged from.

use mysql::Value;

use crate::store::{like_prefix, name_splits, Cursor, StoreError};

/// The name condition ([`crate::store::name_matches`] in SQL; the collation ignores case and
/// accents): a prefix of the sort, first, last, organisation or household name, a
/// first-name and a last-name prefix in either order for each split of a text of several
/// words, and with `deep` a word inside the display name. Starts with ` AND `.
pub(super) fn name_condition(text: &str, deep: bool) -> (String, Vec<Value>) {
    let like = |t: &str| Value::from(like_prefix(t, '!'));
    let mut sql = String::from(
        " AND (c.sort_name LIKE ? ESCAPE '!' OR c.first_name LIKE ? ESCAPE '!'
               OR c.last_name LIKE ? ESCAPE '!' OR c.organization_name LIKE ? ESCAPE '!'
               OR c.household_name LIKE ? ESCAPE '!'",
    );
    let mut args = vec![like(text); 5];
    for (a, b) in name_splits(text) {
        sql.push_str(
            " OR (c.first_name LIKE ? ESCAPE '!' AND c.last_name LIKE ? ESCAPE '!')
              OR (c.last_name LIKE ? ESCAPE '!' AND c.first_name LIKE ? ESCAPE '!')",
        );
        args.extend([like(a), like(b), like(a), like(b)]);
    }
    if deep {
        sql.push_str(" OR c.display_name LIKE ? ESCAPE '!'");
        args.push(Value::from(format!("% {}", like_prefix(text, '!'))));
    }
    sql.push(')');
    (sql, args)
}

/// Where the indexed name search switches plans, in index entries of a range (counted on
/// the index alone, no row read). Reading a range's rows costs a row lookup each (about
/// 3 microseconds in the buffer pool, 20 or more when the page must be read: a million
/// contacts do not fit a default buffer pool), so big ranges are answered on the indexes
/// alone (see [`super::MysqlStore::search_page`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// A first-name range up to this size is read whole and sorted; a bigger one is
    /// matched against the list order on the indexes alone.
    pub first_name_rows: u64,
    /// A first/last split whose smaller half has up to this many entries is intersected on
    /// the two name indexes (no row read) before the few contacts in both are read.
    pub split_half: u64,
    /// A last, organisation or household name range with more entries than this is left
    /// out: CiviCRM's sort names start with the last name (individuals: "Last, First") or
    /// the organisation or household name, so the sort-name range holds those contacts
    /// already, and reading a common surname's range whole (13,539 Smiths at 1M: 60-90 ms)
    /// would only find them again. Up to this size it is read, for sites with other sort
    /// name formats.
    pub covered_rows: u64,
}

impl Default for RangeLimits {
    fn default() -> Self {
        RangeLimits {
            first_name_rows: 5_000,
            split_half: 20_000,
            covered_rows: 500,
        }
    }
}

/// "No limit" in a derived table: MariaDB materializes a derived table that has a LIMIT
/// (it never merges it into the outer query), which is what the index-only plans need.
pub(super) const NO_LIMIT: &str = "18446744073709551615";

/// A contact table with at most this many rows is searched by testing every row for the
/// exact name condition (later words of every name included): a scan that small takes a
/// few ms. Bigger ones use the name indexes.
pub(super) const EXACT_SCAN_MAX_CONTACTS: u64 = 10_000;

/// CiviCRM's indexes the indexed name search forces, as (index, position, column).
pub(super) const NAME_INDEXES: [(&str, u64, &str); 6] = [
    ("index_is_deleted_sort_name", 1, "is_deleted"),
    ("index_is_deleted_sort_name", 2, "sort_name"),
    ("index_first_name", 1, "first_name"),
    ("index_last_name", 1, "last_name"),
    ("index_organization_name", 1, "organization_name"),
    ("index_household_name", 1, "household_name"),
];

/// How name searches run on this database (decided once per store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NamePlan {
    /// Walk index_is_deleted_sort_name testing every row: a small table, or one without
    /// CiviCRM's name indexes.
    Scan,
    /// A union of ranges of CiviCRM's name indexes.
    Indexed,
}

/// One range of a name column's index that holds some of a search's matches.
pub(super) struct NameRange {
    pub(super) index: &'static str,
    /// The condition on the indexed column (a range of its index), and its arguments.
    pub(super) condition: String,
    pub(super) args: Vec<Value>,
    /// What else a row of the range must satisfy (for a split's first-name half, the
    /// last-name half), with its arguments; starts with ` AND ` when present.
    pub(super) filter: (String, Vec<Value>),
    /// When a single range is too big to read whole: match it against the list order (a
    /// first name), or leave it out (its contacts are in the sort-name range).
    pub(super) walk_when_big: bool,
    /// The most entries read whole and sorted (from [`RangeLimits`]).
    pub(super) sparse_max: u64,
}

impl NameRange {
    fn prefix(index: &'static str, column: &str, text: &str, sparse_max: u64) -> NameRange {
        NameRange {
            index,
            condition: format!("c.{column} LIKE ? ESCAPE '!'"),
            args: vec![Value::from(like_prefix(text, '!'))],
            filter: (String::new(), Vec::new()),
            walk_when_big: false,
            sparse_max,
        }
    }

    /// The ranges whose union, with the sort-name range, holds every keystroke match of
    /// `text`: the first, last, organisation and household name prefixes (a big last,
    /// organisation or household range starts the sort name too: CiviCRM's sort names
    /// start with it), then for each first/last split both halves' ranges, by first name
    /// (filtered by the last-name half) then by last name ([`super::MysqlStore::search_page`]
    /// intersects the two, or walks the list when both are big).
    pub(super) fn for_text(text: &str, limits: RangeLimits) -> Vec<NameRange> {
        let mut first = NameRange::prefix(
            "index_first_name",
            "first_name",
            text,
            limits.first_name_rows,
        );
        first.walk_when_big = true;
        let covered = limits.covered_rows;
        let mut out = vec![
            first,
            NameRange::prefix("index_last_name", "last_name", text, covered),
            NameRange::prefix(
                "index_organization_name",
                "organization_name",
                text,
                covered,
            ),
            NameRange::prefix("index_household_name", "household_name", text, covered),
        ];
        let like = |t: &str| Value::from(like_prefix(t, '!'));
        for (a, b) in name_splits(text) {
            for (first_part, last_part) in [(a, b), (b, a)] {
                let half = limits.split_half;
                let mut by_first =
                    NameRange::prefix("index_first_name", "first_name", first_part, half);
                by_first.filter = (
                    " AND c.last_name LIKE ? ESCAPE '!'".into(),
                    vec![like(last_part)],
                );
                out.push(by_first);
                out.push(NameRange::prefix(
                    "index_last_name",
                    "last_name",
                    last_part,
                    half,
                ));
            }
        }
        out
    }

    /// The ids of the range, on its index alone, as a derived table MariaDB materializes.
    pub(super) fn ids(&self, contact: &str) -> String {
        format!(
            "(SELECT c.id FROM {contact} c FORCE INDEX ({index}) WHERE {condition} LIMIT {NO_LIMIT})",
            index = self.index,
            condition = self.condition,
        )
    }
}

/// The keyset condition for `after` (with its arguments): rows after the cursor in list
/// order, NULL sort names first.
pub(super) fn cursor_condition(after: Option<&Cursor>) -> Result<(String, Vec<Value>), StoreError> {
    match after {
        None => Ok((String::new(), Vec::new())),
        // Still among the NULL sort names (they sort first), or past them.
        Some(Cursor::After {
            sort_name: None,
            id,
        }) => Ok((
            " AND (c.sort_name IS NOT NULL OR c.id > ?)".into(),
            vec![Value::UInt(*id)],
        )),
        Some(Cursor::After {
            sort_name: Some(sort_name),
            id,
        }) => Ok((
            " AND (c.sort_name > ? OR (c.sort_name = ? AND c.id > ?))".into(),
            vec![
                Value::from(sort_name.as_str()),
                Value::from(sort_name.as_str()),
                Value::UInt(*id),
            ],
        )),
        Some(Cursor::Offset(_)) => Err(StoreError::invalid(
            "the MySQL store pages by key, not by offset",
        )),
    }
}

/// A search being built: parenthesized SELECTs of (id, sort_name), each already limited
/// to one page past the cursor, to be merged with UNION (which also drops a contact two
/// ranges found).
pub(super) struct Union<'a> {
    pub(super) contact: String,
    pub(super) cursor: String,
    pub(super) cursor_args: Vec<Value>,
    /// The ranges that hold the list in list order: one of index_sort_name when the trash
    /// is included (and the index is there), else one of index_is_deleted_sort_name per
    /// is_deleted value, as (index, condition).
    pub(super) list_ranges: &'a [(&'static str, &'static str)],
    pub(super) fetch: usize,
    pub(super) branches: Vec<String>,
    pub(super) args: Vec<Value>,
}

impl Union<'_> {
    /// The list order walked on the index alone (`list_ranges`), each entry looked up in
    /// `members` (a derived table of ids, materialized once per range, with its
    /// arguments), until a page of members is found; no row is read.
    pub(super) fn walk_members(&mut self, members: &str, members_args: &[Value]) {
        let join = format!(" STRAIGHT_JOIN {members} m ON m.id = c.id");
        self.walk_list(&join, "", members_args);
    }

    /// `select`, whose placeholders are `before`, the cursor's, then `after`.
    pub(super) fn add(&mut self, select: String, before: Vec<Value>, after: &[Value]) {
        self.branches.push(select);
        self.args.extend(before);
        self.args.extend_from_slice(&self.cursor_args);
        self.args.extend_from_slice(after);
    }

    /// The list order (`list_ranges`), `condition` (starting with ` AND `) tested on each
    /// row, read until a page is found.
    pub(super) fn walk(&mut self, condition: &str, condition_args: &[Value]) {
        self.walk_list("", condition, condition_args);
    }

    /// One SELECT per list range, in list order: `join` (a table each entry is looked up
    /// in) and `condition`, whose placeholders `args` fill, then the cursor's.
    fn walk_list(&mut self, join: &str, condition: &str, args: &[Value]) {
        let ranges = self.list_ranges;
        for (index, list) in ranges {
            let select = format!(
                "(SELECT c.id, c.sort_name FROM {contact} c FORCE INDEX ({index}){join}
                   WHERE {list}{condition}{cursor}
                   ORDER BY c.sort_name, c.id LIMIT {fetch})",
                contact = self.contact,
                cursor = self.cursor,
                fetch = self.fetch,
            );
            self.add(select, args.to_vec(), &[]);
        }
    }
}
