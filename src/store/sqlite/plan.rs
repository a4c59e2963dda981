//! How a SQLite search is planned: which index range finds the candidates (the list order,
//! the email index, the word table by its heads, the pair table), chosen by how many
//! matches a range holds, and the name match every found contact is tested with.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::errors::sql_err;
use super::words::{head, RowNames};
use super::SqliteStore;
use crate::store::{like_prefix, paging, Cursor, Matcher, Query, StoreError};

/// Above this many index entries a prefix is common: walking the contacts in list order
/// finds a page of matches sooner than collecting and sorting every match. Below it,
/// collecting and sorting the matches is cheaper than walking past non-matches.
pub(super) const DENSE_MATCHES: i64 = 5_000;

/// A search of several words collects up to this many times [`DENSE_MATCHES`] candidates
/// from the pair table (read from the index alone, about 0.2 microseconds each to sort and
/// merge) before it walks the list instead: that walk tests each contact having a word that
/// starts with the text's first word, in list order, and can read tens of thousands before
/// a page (`j s`: 13,000 pairs, the walk 70 to 120 ms, the pairs 3 ms).
pub(super) const PAIR_DENSE_FACTOR: i64 = 4;

/// Where a search reads its contacts from and what they must satisfy (besides the
/// deleted flag and the page cursor, which every plan shares).
pub(super) struct Plan {
    pub(super) from: String,
    pub(super) conditions: Vec<String>,
    pub(super) args: Vec<Value>,
    /// The list order's two columns as this plan reads them; rows come out in this order.
    pub(super) sort_key: &'static str,
    pub(super) id: &'static str,
    /// Several rows per contact may match (one per word): keep one.
    pub(super) one_per_contact: bool,
    /// The deleted flag and the cursor are already applied inside `from`.
    pub(super) pages_itself: bool,
    /// An expression that is false for a row the index found wrongly (a stale word): the
    /// search is then answered without the index.
    pub(super) check: Option<(String, Vec<Value>)>,
}

pub(super) const LIST_ORDER: (&str, &str) = ("coalesce(c.sort_name, '')", "c.id");

impl Plan {
    /// Walk the contacts in list order (an index range on `civikey_sort_key`), testing each.
    fn in_list_order(indexed: bool, conditions: Vec<String>, args: Vec<Value>) -> Plan {
        let from = if indexed {
            "civicrm_contact c INDEXED BY civikey_sort_key"
        } else {
            "civicrm_contact c"
        };
        Plan {
            from: from.into(),
            conditions,
            args,
            sort_key: LIST_ORDER.0,
            id: LIST_ORDER.1,
            one_per_contact: false,
            pages_itself: false,
            check: None,
        }
    }

    /// Collect the ids `ids_sql` yields, then read and sort just those contacts.
    fn from_ids(ids_sql: &str, args: Vec<Value>) -> Plan {
        Plan {
            from: format!("({ids_sql}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"),
            conditions: Vec::new(),
            args,
            sort_key: LIST_ORDER.0,
            id: LIST_ORDER.1,
            one_per_contact: false,
            pages_itself: false,
            check: None,
        }
    }

    /// Walk the words starting with the text's first one or `two` characters in list
    /// order (`civikey_word_head`, `_head2`), reading the contact of each that matches.
    fn by_head(two: bool, conditions: Vec<String>, args: Vec<Value>) -> Plan {
        let index = if two {
            "civikey_word_head2"
        } else {
            "civikey_word_head"
        };
        Plan {
            from: format!(
                "civikey_word w INDEXED BY {index}
                 CROSS JOIN civicrm_contact c ON c.id = w.contact_id"
            ),
            conditions,
            args,
            sort_key: "w.sort_key",
            id: "w.contact_id",
            one_per_contact: true,
            pages_itself: false,
            check: None,
        }
    }
}

/// Rows after `after` in list order, on the columns `sort_key` and `id` as a plan reads
/// them: the condition and its arguments, None on the first page. Spelled out rather than
/// as a row value, which SQLite does not turn into a range of an index on an expression
/// (it would scan from the first contact). The list order holds a NULL sort name as ''.
pub(super) fn after_cursor(
    after: Option<&Cursor>,
    sort_key: &str,
    id: &str,
) -> Result<Option<(String, Vec<Value>)>, StoreError> {
    match after {
        None => Ok(None),
        Some(Cursor::After {
            sort_name,
            id: after_id,
        }) => Ok(Some((
            format!("{sort_key} >= ? AND ({sort_key} > ? OR {id} > ?)"),
            vec![
                // The list orders by coalesce(sort_name, ''): a NULL sort name is ''.
                Value::Text(sort_name.clone().unwrap_or_default()),
                Value::Text(sort_name.clone().unwrap_or_default()),
                Value::Integer(*after_id as i64),
            ],
        ))),
        Some(Cursor::Offset(_)) => Err(offset_refused()),
    }
}

pub(super) fn offset_refused() -> StoreError {
    StoreError::invalid("the SQLite store pages by key, not by offset")
}

/// The smallest string above every string starting with `prefix` in NOCASE order (which
/// is code point order after folding A-Z to a-z), or None when there is none.
pub(super) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next code point NOCASE can hold (it never sees A-Z: they compare as a-z).
        let next = (u32::from(last) + 1..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .find(|c| !c.is_ascii_uppercase());
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The name match ([`crate::store::name_matches`]) tested on contact `c`.
pub(super) fn name_condition(text: &str, deep: bool) -> (String, Vec<Value>) {
    (
        "civikey_name_match(?, ?, c.sort_name, c.first_name, c.last_name, c.display_name, c.contact_type)"
            .into(),
        vec![Value::Text(text.to_string()), Value::Integer(i64::from(deep))],
    )
}

/// `civikey_name_match(text, deep, sort_name, first_name, last_name, display_name,
/// contact_type)`: [`crate::store::name_matches`] in SQL, and `civikey_email_is(email,
/// address)`: [`crate::store::email_is`], on civikey's own connections only (never
/// in a trigger or an index, which other programs must be able to run).
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "civikey_name_match",
        7,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // The text is the same for every row of a statement: folded and split once.
            let query =
                ctx.get_or_create_aux(0, |text| -> Result<_, rusqlite::types::FromSqlError> {
                    Ok(crate::store::NameQuery::new(text.as_str()?))
                })?;
            let deep: bool = ctx.get(1)?;
            let names = RowNames {
                sort_name: ctx.get(2)?,
                first_name: ctx.get(3)?,
                last_name: ctx.get(4)?,
                display_name: ctx.get(5)?,
                contact_type: ctx.get(6)?,
            };
            Ok(query.matches(&names.names(), deep))
        },
    )?;
    conn.create_scalar_function(
        "civikey_email_is",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let stored: Option<String> = ctx.get(0)?;
            let address: String = ctx.get(1)?;
            Ok(stored.is_some_and(|s| crate::store::email_is(&s, &address)))
        },
    )
}

impl SqliteStore {
    /// Chooses how to find the contacts `query` matches.
    pub(super) fn plan(&mut self, query: &Query) -> Result<Plan, StoreError> {
        let indexed = self.indexed;
        Ok(match query.matcher() {
            Matcher::All => Plan::in_list_order(indexed, Vec::new(), Vec::new()),
            Matcher::Id(id) => {
                let mut plan = Plan::in_list_order(false, vec!["c.id = ?".into()], Vec::new());
                plan.args.push(Value::Integer(id as i64));
                plan
            }
            Matcher::Email(text) => {
                // Every primary email tested with the one definition (accents and case as
                // MySQL's collation ignores them, which no SQLite index compares by): a
                // scan of civicrm_email, for a lookup of one person, never a keystroke.
                Plan::from_ids(
                    "SELECT DISTINCT contact_id FROM civicrm_email
                      WHERE is_primary = 1 AND civikey_email_is(email, ?)",
                    vec![Value::Text(text.to_string())],
                )
            }
            Matcher::EmailPrefix(text) => {
                // UI_email compares without case, so the LIKE is a range of that index.
                let pattern = Value::Text(like_prefix(text, '\\'));
                let matches = self.count_up_to(
                    "SELECT 1 FROM civicrm_email WHERE email LIKE ?1 ESCAPE '\\' LIMIT ?2",
                    vec![pattern.clone()],
                    self.dense_matches,
                )?;
                if matches > self.dense_matches {
                    Plan::in_list_order(
                        indexed,
                        vec!["EXISTS (SELECT 1 FROM civicrm_email e WHERE e.contact_id = c.id AND e.email LIKE ? ESCAPE '\\')".into()],
                        vec![pattern],
                    )
                } else {
                    Plan::from_ids(
                        "SELECT DISTINCT contact_id FROM civicrm_email WHERE email LIKE ? ESCAPE '\\'",
                        vec![pattern],
                    )
                }
            }
            Matcher::Name(text) if !query.deep && self.refresh_words()? => {
                // Every keystroke match has a word starting with the text's first word (the
                // whole text starts with it, and so does the first part of every first/last
                // split): that range finds the candidates, [`name_matches`] decides.
                let folded = crate::store::collation::fold(text);
                let prefix = folded
                    .split(char::is_whitespace)
                    .next()
                    .unwrap_or(&folded)
                    .to_string();
                let several_words = prefix.len() < folded.len();
                if several_words && self.pairs_fresh {
                    if let Some(plan) = self.pair_plan(query, text, &folded)? {
                        return Ok(plan);
                    }
                }
                // Both bounds must be in the SQL text (not `? IS NULL OR ...`) for SQLite
                // to read only the range.
                let mut range_args = vec![Value::Text(prefix.clone())];
                let upper = match prefix_upper_bound(&prefix) {
                    Some(high) => {
                        range_args.push(Value::Text(high));
                        " AND {w}word < ?"
                    }
                    None => "",
                };
                let range = |w: &str| format!("{w}word >= ?{}", upper.replace("{w}", w));
                // One or two characters: every word in that head's list matches, so walking
                // it in list order wastes nothing. Longer: count the matching words.
                let short = prefix.chars().nth(2).is_none();
                let matches = if short {
                    i64::MAX
                } else {
                    self.count_up_to(
                        &format!("SELECT 1 FROM civikey_word WHERE {} LIMIT ?", range("")),
                        range_args.clone(),
                        self.dense_matches,
                    )?
                };
                let (verify, verify_args) = name_condition(text, false);
                if matches > self.dense_matches {
                    // Common: walk the words that start as the text does (one or two
                    // characters), list order. A page needs only its first matches.
                    let two = prefix.chars().nth(1).is_some();
                    let column = if two { "head2" } else { "head" };
                    let mut args = vec![Value::Text(head(&prefix, if two { 2 } else { 1 }))];
                    args.extend(range_args);
                    args.extend(verify_args);
                    Plan::by_head(
                        two,
                        vec![format!("w.{column} = ? AND {} AND {verify}", range("w."))],
                        args,
                    )
                } else {
                    // Rare: sort the matching words' contacts by the list order the word
                    // table holds, then read only one page of contacts. Several words:
                    // the candidates are tested before the page is cut.
                    let mut inner = format!(
                        "SELECT w.sort_key, w.contact_id FROM civikey_word w WHERE {}",
                        range("w.")
                    );
                    let mut args = range_args;
                    if several_words {
                        inner.push_str(&format!(
                            " AND EXISTS (SELECT 1 FROM civicrm_contact c WHERE c.id = w.contact_id AND {verify})"
                        ));
                        args.extend(verify_args.iter().cloned());
                    }
                    if !query.include_deleted {
                        inner.push_str(" AND EXISTS (SELECT 1 FROM civicrm_contact d WHERE d.id = w.contact_id AND d.is_deleted = 0)");
                    }
                    if let Some((after, after_args)) =
                        after_cursor(query.after.as_ref(), "w.sort_key", "w.contact_id")?
                    {
                        inner.push_str(&format!(" AND {after}"));
                        args.extend(after_args);
                    }
                    inner.push_str(" GROUP BY w.sort_key, w.contact_id ORDER BY w.sort_key, w.contact_id LIMIT ?");
                    args.push(Value::Integer(paging::page_limit(query.limit) as i64 + 1));
                    Plan {
                        from: format!(
                            "({inner}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"
                        ),
                        conditions: Vec::new(),
                        args,
                        sort_key: "m.sort_key",
                        id: "m.contact_id",
                        one_per_contact: false,
                        pages_itself: true,
                        check: Some((verify, verify_args)),
                    }
                }
            }
            Matcher::Name(text) => {
                // A deep search (a word inside the display name), or no usable word table:
                // every contact tested, in list order.
                let (condition, args) = name_condition(text, query.deep);
                Plan::in_list_order(indexed, vec![condition], args)
            }
        })
    }

    /// A search of several words through the pair table ([`super::index::PAIR_TABLES`]). Its matches
    /// are exactly the contacts with a word starting with the whole text (a name that
    /// starts so) and, for each split into a first-name and a last-name prefix, those with
    /// a pair whose two names start with its two parts: index ranges only, no contact read
    /// or tested before the page is cut. A split's pairs are found by the distinct names
    /// starting with its longer part (both orders are in the table, so either part can
    /// lead), each a range of the pairs that continue with the other part. The candidates
    /// (past the cursor) come in the list position the tables hold and are merged
    /// (`UNION ... ORDER BY`), cut to the page, and only the page's contacts read. None
    /// (search the older way): more than [`PAIR_DENSE_FACTOR`] times the dense threshold
    /// of pairs, or a prefix whose range has no upper bound.
    pub(super) fn pair_plan(
        &mut self,
        query: &Query,
        text: &str,
        folded: &str,
    ) -> Result<Option<Plan>, StoreError> {
        let Some(high) = prefix_upper_bound(folded) else {
            return Ok(None);
        };
        // Parameters in the order they appear: the name lists (WITH) first, then the arms.
        let mut lists = Vec::new();
        let mut list_args = Vec::new();
        // Each arm: its FROM and WHERE, the columns it reads the list order from, its
        // parameters. The words starting with the text: more than the dense threshold,
        // walked in list order (the words with the text's first two characters,
        // `civikey_word_head2`), so the merge below reads only as many as the page needs;
        // fewer, collected and sorted.
        let range_args = vec![Value::Text(folded.to_string()), Value::Text(high)];
        let words = self.count_up_to(
            "SELECT 1 FROM civikey_word WHERE word >= ? AND word < ? LIMIT ?",
            range_args.clone(),
            self.dense_matches,
        )?;
        let mut arms = vec![if words > self.dense_matches {
            let mut args = vec![Value::Text(head(folded, 2))];
            args.extend(range_args);
            (
                "FROM civikey_word w INDEXED BY civikey_word_head2
                  WHERE w.head2 = ? AND w.word >= ? AND w.word < ?"
                    .to_string(),
                "w",
                args,
            )
        } else {
            (
                "FROM civikey_word w WHERE w.word >= ? AND w.word < ?".to_string(),
                "w",
                range_args,
            )
        }];
        for (i, (a, b)) in crate::store::name_splits(folded).into_iter().enumerate() {
            let (lead, other) = if b.chars().count() > a.chars().count() {
                (b, a)
            } else {
                (a, b)
            };
            let (Some(lead_high), Some(other_high)) =
                (prefix_upper_bound(lead), prefix_upper_bound(other))
            else {
                return Ok(None);
            };
            // The distinct names starting with `lead`, one index seek each (a skip scan).
            lists.push(format!(
                "n{i}(a) AS (
                   SELECT (SELECT a FROM civikey_word_pair WHERE a >= ? AND a < ? ORDER BY a LIMIT 1)
                   UNION ALL
                   SELECT (SELECT p.a FROM civikey_word_pair p WHERE p.a > n{i}.a AND p.a < ? ORDER BY p.a LIMIT 1)
                     FROM n{i} WHERE n{i}.a IS NOT NULL)"
            ));
            list_args.extend([
                Value::Text(lead.to_string()),
                Value::Text(lead_high.clone()),
                Value::Text(lead_high),
            ]);
            arms.push((
                format!(
                    "FROM n{i} CROSS JOIN civikey_word_pair p
                      WHERE p.a = n{i}.a AND p.b >= ? AND p.b < ?"
                ),
                "p",
                vec![Value::Text(other.to_string()), Value::Text(other_high)],
            ));
        }
        let with = if lists.is_empty() {
            String::new()
        } else {
            format!("WITH RECURSIVE {} ", lists.join(", "))
        };
        // The pairs are always collected and sorted: beyond a bound, the older walk.
        let most = self.dense_matches.saturating_mul(PAIR_DENSE_FACTOR);
        if arms.len() > 1 {
            let mut args = list_args.clone();
            args.extend(arms[1..].iter().flat_map(|(_, _, a)| a.iter().cloned()));
            let pairs = self.count_up_to(
                &format!(
                    "{with}SELECT 1 FROM ({}) LIMIT ?",
                    arms[1..]
                        .iter()
                        .map(|(from, _, _)| format!("SELECT 1 {from}"))
                        .collect::<Vec<_>>()
                        .join(" UNION ALL ")
                ),
                args,
                most,
            )?;
            if pairs > most {
                return Ok(None);
            }
        }
        let mut args = list_args;
        let mut selects = Vec::new();
        for (from, t, arm_args) in arms {
            let mut select = format!("SELECT {t}.sort_key, {t}.contact_id {from}");
            args.extend(arm_args);
            if !query.include_deleted {
                select.push_str(&format!(" AND EXISTS (SELECT 1 FROM civicrm_contact d WHERE d.id = {t}.contact_id AND d.is_deleted = 0)"));
            }
            let (sort_key, id) = (format!("{t}.sort_key"), format!("{t}.contact_id"));
            if let Some((after, after_args)) = after_cursor(query.after.as_ref(), &sort_key, &id)? {
                select.push_str(&format!(" AND {after}"));
                args.extend(after_args);
            }
            selects.push(select);
        }
        // A compound ORDER BY: each arm sorted, then merged without duplicates (cheaper
        // than a UNION sorted again).
        let inner = format!("{with}{} ORDER BY 1, 2 LIMIT ?", selects.join(" UNION "));
        args.push(Value::Integer(paging::page_limit(query.limit) as i64 + 1));
        Ok(Some(Plan {
            from: format!("({inner}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"),
            conditions: Vec::new(),
            args,
            sort_key: "m.sort_key",
            id: "m.contact_id",
            one_per_contact: false,
            pages_itself: true,
            // The page's contacts are tested: a pair the index holds wrongly (a writer
            // around the triggers) sends the search the unindexed way.
            check: Some(name_condition(text, false)),
        }))
    }

    /// How many rows `sql` (whose last parameter is its LIMIT) yields, counting at most
    /// one more than `most`.
    pub(super) fn count_up_to(
        &mut self,
        sql: &str,
        mut args: Vec<Value>,
        most: i64,
    ) -> Result<i64, StoreError> {
        args.push(Value::Integer(most.saturating_add(1)));
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM ({sql})"))
            .map_err(sql_err)?;
        stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0))
            .map_err(sql_err)
    }
}
