//! A page of a search: the matcher turned into a union of index ranges ([`super::plan`]),
//! each read at most a page past the cursor, merged, and only the page's contacts read in
//! full; and the two things decided once per store that the plans depend on.

use mysql::prelude::Queryable;
use mysql::{Params, Row, Value};

use super::errors::Phase;
use super::plan::{
    cursor_condition, name_condition, NamePlan, NameRange, Union, NAME_INDEXES, NO_LIMIT,
};
use super::rows::{row_to_contact, uint};
use super::MysqlStore;
use crate::store::{like_prefix, paging, Cursor, Matcher, Page, Query, StoreError};

impl MysqlStore {
    /// Keyset paging in list order (sort_name, id), on CiviCRM's own indexes only (see
    /// docs/PERFORMANCE.md): each matcher becomes a union of index ranges, each read at most
    /// up to the page size, merged, and only the page's contacts are read in full.
    pub(super) fn search_page(&mut self, query: &Query) -> Result<Page, StoreError> {
        let limit = paging::page_limit(query.limit);
        let fetch = limit + 1;
        let t = self.tables.clone();
        let (cursor, cursor_args) = cursor_condition(query.after.as_ref())?;
        // Decided once, with the name indexes: whether index_sort_name is there.
        self.name_plan()?;
        let list_ranges: &[(&str, &str)] = match (query.include_deleted, self.sort_name_index) {
            (true, true) => &[("index_sort_name", "TRUE")],
            (true, false) => &[
                ("index_is_deleted_sort_name", "c.is_deleted = 0"),
                ("index_is_deleted_sort_name", "c.is_deleted = 1"),
            ],
            (false, _) => &[("index_is_deleted_sort_name", "c.is_deleted = 0")],
        };
        let live_only = if query.include_deleted {
            ""
        } else {
            " AND c.is_deleted = 0"
        };
        let mut sql = Union {
            contact: t.contact.clone(),
            cursor,
            cursor_args,
            list_ranges,
            fetch,
            branches: Vec::new(),
            args: Vec::new(),
        };
        match query.matcher() {
            Matcher::All => sql.walk("", &[]),
            Matcher::Id(id) => {
                // The primary key: one row at most.
                sql.add(
                    format!(
                        "(SELECT c.id, c.sort_name FROM {} c WHERE c.id = ?{live_only}{})",
                        t.contact, sql.cursor
                    ),
                    vec![Value::UInt(id)],
                    &[],
                );
            }
            Matcher::EmailPrefix(text) => {
                // A LIKE prefix is a range of UI_email (a case-insensitive index, as LIKE
                // compares); a contact with two matching emails is one row.
                sql.add(
                    format!(
                        "(SELECT DISTINCT c.id, c.sort_name FROM {email} e
                           JOIN {contact} c ON c.id = e.contact_id
                          WHERE e.email LIKE ? ESCAPE '!'{live_only}{cursor}
                          ORDER BY c.sort_name, c.id LIMIT {fetch})",
                        email = t.email,
                        contact = t.contact,
                        cursor = sql.cursor
                    ),
                    vec![Value::from(like_prefix(text, '!'))],
                    &[],
                );
            }
            Matcher::Email(text) => {
                // `=` in the column's collation (as CiviCRM's API compares), one range of
                // UI_email; only the primary email counts.
                sql.add(
                    format!(
                        "(SELECT DISTINCT c.id, c.sort_name FROM {email} e
                           JOIN {contact} c ON c.id = e.contact_id
                          WHERE e.email = ? AND e.is_primary = 1{live_only}{cursor}
                          ORDER BY c.sort_name, c.id LIMIT {fetch})",
                        email = t.email,
                        contact = t.contact,
                        cursor = sql.cursor
                    ),
                    vec![Value::from(text)],
                    &[],
                );
            }
            Matcher::Name(text) => {
                let (condition, condition_args) = name_condition(text, query.deep);
                if query.deep || self.name_plan()? == NamePlan::Scan {
                    // A word inside the display name has no index: every row is tested
                    // (a deep search, never sent per keystroke), as on a small table.
                    sql.walk(&condition, &condition_args);
                } else {
                    // sort_name prefix: a range of index_is_deleted_sort_name in list order.
                    sql.walk(
                        " AND c.sort_name LIKE ? ESCAPE '!'",
                        &[Value::from(like_prefix(text, '!'))],
                    );
                    let ranges = NameRange::for_text(text, self.range_limits);
                    let sizes = self.range_sizes(&ranges)?;
                    // The first four are single ranges.
                    for (range, &size) in ranges.iter().zip(&sizes).take(4) {
                        if size <= range.sparse_max {
                            // Few enough to read them all and sort: the range of the
                            // column's own index.
                            sql.add(
                                format!(
                                    "(SELECT c.id, c.sort_name FROM {contact} c FORCE INDEX ({index})
                                       WHERE {range_condition}{live_only}{cursor}
                                       ORDER BY c.sort_name, c.id LIMIT {fetch})",
                                    contact = t.contact,
                                    index = range.index,
                                    range_condition = range.condition,
                                    cursor = sql.cursor,
                                ),
                                range.args.clone(),
                                &[],
                            );
                        } else if range.walk_when_big {
                            // A common first name: its ids on index_first_name alone,
                            // matched against the list order on the sort-name index alone
                            // (reading its rows would be a lookup each, most of them
                            // outside the buffer pool at a million contacts).
                            sql.walk_members(&range.ids(&t.contact), &range.args);
                        }
                    }
                    // Then pairs (by first name, by last name) for each first/last split.
                    for (pair, size) in ranges[4..].chunks(2).zip(sizes[4..].chunks(2)) {
                        let (by_first, by_last) = (&pair[0], &pair[1]);
                        if size[0].min(size[1]) <= by_first.sparse_max {
                            // The two halves intersected on their indexes alone; only the
                            // contacts in both (usually a few) are read.
                            let mut args = by_first.args.clone();
                            args.extend_from_slice(&by_last.args);
                            sql.add(
                                format!(
                                    "(SELECT c.id, c.sort_name FROM
                                       (SELECT f.id FROM {first} f JOIN {last} l ON l.id = f.id
                                         LIMIT {NO_LIMIT}) m
                                       STRAIGHT_JOIN {contact} c ON c.id = m.id
                                       WHERE TRUE{live_only}{cursor}
                                       ORDER BY c.sort_name, c.id LIMIT {fetch})",
                                    first = by_first.ids(&t.contact),
                                    last = by_last.ids(&t.contact),
                                    contact = t.contact,
                                    cursor = sql.cursor,
                                ),
                                args,
                                &[],
                            );
                        } else {
                            // Both halves common: a page of contacts having both comes
                            // soon in list order.
                            let (filter, filter_args) = &by_first.filter;
                            let walk_condition = format!(" AND {}{filter}", by_first.condition);
                            let mut walk_args = by_first.args.clone();
                            walk_args.extend_from_slice(filter_args);
                            sql.walk(&walk_condition, &walk_args);
                        }
                    }
                }
            }
        }
        let Union { branches, args, .. } = sql;
        let sql = format!(
            "SELECT {} FROM ({}) k JOIN {} c ON c.id = k.id ORDER BY k.sort_name, k.id LIMIT {fetch}",
            t.contact_columns(),
            branches.join(" UNION "),
            t.contact
        );
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, Params::Positional(args)))?;
        let found = rows
            .iter()
            .map(row_to_contact)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))?;
        let (found, next) = paging::cut(found, limit, |(last, sort_name)| Cursor::After {
            sort_name: sort_name.clone(),
            id: last.id,
        });
        Ok(Page {
            contacts: found.into_iter().map(|(c, _)| c).collect(),
            next,
        })
    }

    /// Decides once how name searches run: through the name indexes when CiviCRM's are
    /// all there (a database may predate one) and the table is too big to scan.
    fn name_plan(&mut self) -> Result<NamePlan, StoreError> {
        if let Some(plan) = self.name_plan {
            return Ok(plan);
        }
        let table = self.tables.contact_name.clone();
        let columns: Vec<(String, u64, String)> = self.run(Phase::Read, |c| {
            c.exec(
                "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
        })?;
        let has = |(index, position, column): &(&str, u64, &str)| {
            columns.iter().any(|(i, p, c)| {
                i.eq_ignore_ascii_case(index) && p == position && c.eq_ignore_ascii_case(column)
            })
        };
        let indexed = NAME_INDEXES.iter().all(has);
        // Its first column is sort_name and it has no second one (InnoDB then orders its
        // entries by the primary key, the id).
        self.sort_name_index = has(&("index_sort_name", 1, "sort_name"))
            && !columns
                .iter()
                .any(|(i, p, _)| i.eq_ignore_ascii_case("index_sort_name") && *p > 1);
        let plan = if indexed {
            // Counting stops one row past the limit: cheap on any table.
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT {}) x",
                self.tables.contact,
                self.exact_scan_max.saturating_add(1)
            );
            let rows: Option<u64> = self.run(Phase::Read, |c| c.query_first(sql))?;
            if rows.unwrap_or(0) > self.exact_scan_max {
                NamePlan::Indexed
            } else {
                NamePlan::Scan
            }
        } else {
            NamePlan::Scan
        };
        self.name_plan = Some(plan);
        Ok(plan)
    }

    /// How many entries each range holds, counted up to its `sparse_max` + 1 on the index
    /// alone (no row is read).
    fn range_sizes(&mut self, ranges: &[NameRange]) -> Result<Vec<u64>, StoreError> {
        let counts: Vec<String> = ranges
            .iter()
            .map(|r| {
                format!(
                    "(SELECT COUNT(*) FROM (SELECT 1 FROM {contact} c FORCE INDEX ({index})
                       WHERE {condition} LIMIT {limit}) x)",
                    contact = self.tables.contact,
                    index = r.index,
                    condition = r.condition,
                    limit = r.sparse_max + 1
                )
            })
            .collect();
        let sql = format!("SELECT {}", counts.join(", "));
        let args: Vec<Value> = ranges.iter().flat_map(|r| r.args.clone()).collect();
        let row: Option<Row> =
            self.run(Phase::Read, |c| c.exec_first(sql, Params::Positional(args)))?;
        let row =
            row.ok_or_else(|| StoreError::bad_data(format!("{}: no counts", self.location)))?;
        (0..ranges.len())
            .map(|i| uint(&row, i).map(|n| n.unwrap_or(0)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }
}
