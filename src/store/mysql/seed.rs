//! Building a CiviCRM-shaped database for tests and demos (`civikey seed`): the tables
//! with CiviCRM's names, columns and indexes, and contacts put in by multi-row INSERTs.
//! Never used on a real site: an existing table is refused.

use mysql::prelude::Queryable;
use mysql::{Conn, Params, Row, TxOpts, Value};

use super::errors::{map_error, Phase};
use super::rows::uint;
use super::tables::Tables;
use crate::seed::SeedContact;
use crate::store::StoreError;

/// How many rows one multi-row INSERT carries, and how many contacts one transaction holds.
const INSERT_BATCH: usize = 500;
const INSERT_TRANSACTION: usize = 10_000;

/// Creates CiviCRM-shaped tables (the columns and indexes civikey reads, with the names and
/// columns CiviCRM's schema/Contact/Contact.entityType.php gives them: InnoDB, utf8mb4,
/// utf8mb4_unicode_ci). For test and demo databases only; fails if
/// a table already exists, so it can never change a real CiviCRM schema.
pub fn install_schema(conn: &mut Conn, prefix: &str) -> Result<(), StoreError> {
    let t = Tables::new(prefix)?;
    let options =
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC";
    let statements = [
        format!(
            "CREATE TABLE {contact} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               contact_type varchar(64) DEFAULT NULL,
               display_name varchar(128) DEFAULT NULL,
               sort_name varchar(128) DEFAULT NULL,
               organization_name varchar(128) DEFAULT NULL,
               first_name varchar(64) DEFAULT NULL,
               last_name varchar(64) DEFAULT NULL,
               household_name varchar(128) DEFAULT NULL,
               is_deleted tinyint NOT NULL DEFAULT 0,
               created_date timestamp NULL DEFAULT CURRENT_TIMESTAMP,
               modified_date timestamp NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
               api_key varchar(32) DEFAULT NULL,
               PRIMARY KEY (id),
               INDEX index_organization_name (organization_name),
               INDEX index_first_name (first_name),
               INDEX index_last_name (last_name),
               INDEX index_sort_name (sort_name),
               INDEX index_api_key (api_key),
               INDEX index_household_name (household_name),
               INDEX index_is_deleted_sort_name (is_deleted, sort_name, id)
             ) {options}",
            contact = t.contact
        ),
        format!(
            "CREATE TABLE {email} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               contact_id int unsigned DEFAULT NULL,
               location_type_id int unsigned DEFAULT NULL,
               email varchar(254) DEFAULT NULL,
               is_primary tinyint NOT NULL DEFAULT 0,
               on_hold tinyint NOT NULL DEFAULT 0,
               PRIMARY KEY (id),
               INDEX UI_email (email),
               CONSTRAINT `FK_{prefix}civicrm_email_contact_id` FOREIGN KEY (contact_id)
                 REFERENCES {contact} (id) ON DELETE CASCADE
             ) {options}",
            email = t.email,
            contact = t.contact
        ),
        format!(
            "CREATE TABLE {uf} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               domain_id int unsigned NOT NULL,
               uf_id int unsigned NOT NULL,
               uf_name varchar(128) DEFAULT NULL,
               contact_id int unsigned DEFAULT NULL,
               PRIMARY KEY (id),
               UNIQUE INDEX UI_uf_match_contact_id_domain_id (contact_id, domain_id),
               INDEX I_civicrm_uf_match_uf_id (uf_id),
               CONSTRAINT `FK_{prefix}civicrm_uf_match_contact_id` FOREIGN KEY (contact_id)
                 REFERENCES {contact} (id) ON DELETE CASCADE
             ) {options}",
            uf = t.uf,
            contact = t.contact
        ),
    ];
    for sql in statements {
        conn.query_drop(sql).map_err(|e| match e {
            mysql::Error::MySqlError(ref err) if err.code == 1050 => StoreError::invalid(format!(
                "{}; civikey never changes an existing schema",
                err.message
            )),
            other => map_error(other, "install_schema", Phase::Read),
        })?;
    }
    Ok(())
}

/// Fills CiviCRM-shaped tables (see [`install_schema`]) with `contacts`: multi-row INSERTs,
/// one transaction per 10,000 contacts, `progress` told the running total after each.
/// Contacts without an id get the next free ones.
pub fn insert_contacts(
    conn: &mut Conn,
    prefix: &str,
    contacts: impl IntoIterator<Item = SeedContact>,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let t = Tables::new(prefix)?;
    let fail = |e| map_error(e, "insert_contacts", Phase::Read);
    let max_id: Option<Row> = conn
        .query_first(format!("SELECT COALESCE(MAX(id), 0) FROM {}", t.contact))
        .map_err(fail)?;
    let mut last_id = max_id
        .as_ref()
        .map(|r| uint(r, 0))
        .transpose()
        .map_err(StoreError::bad_data)?
        .flatten()
        .unwrap_or(0);
    let mut batch = Batch::default();
    let mut done = 0;
    let mut tx = conn.start_transaction(TxOpts::default()).map_err(fail)?;
    for c in contacts {
        let id = match c.id {
            Some(id) => u64::try_from(id)
                .map_err(|_| StoreError::invalid(format!("contact id {id} is negative")))?,
            None => last_id + 1,
        };
        last_id = last_id.max(id);
        batch.add(id, c);
        if batch.rows == INSERT_BATCH {
            batch.flush(&mut tx, &t).map_err(fail)?;
        }
        done += 1;
        if done % INSERT_TRANSACTION == 0 {
            batch.flush(&mut tx, &t).map_err(fail)?;
            tx.commit().map_err(fail)?;
            progress(done);
            tx = conn.start_transaction(TxOpts::default()).map_err(fail)?;
        }
    }
    batch.flush(&mut tx, &t).map_err(fail)?;
    tx.commit().map_err(fail)?;
    progress(done);
    Ok(())
}

/// Rows waiting for their multi-row INSERT.
#[derive(Default)]
struct Batch {
    /// Contacts waiting (each has one row in `contacts`, at most one in `emails` and `ufs`).
    rows: usize,
    contacts: Vec<Value>,
    emails: Vec<Value>,
    ufs: Vec<Value>,
}

impl Batch {
    const CONTACT_COLUMNS: usize = 10;
    const EMAIL_COLUMNS: usize = 2;
    const UF_COLUMNS: usize = 3;

    fn add(&mut self, id: u64, c: SeedContact) {
        self.rows += 1;
        let text = |s: Option<String>| s.map_or(Value::NULL, Value::from);
        // CiviCRM keeps an organisation's or household's name in a column of its own and
        // derives display_name from it: the name is the display name.
        let own_name = |kind: &str| {
            if c.contact_type == kind {
                Value::from(c.display_name.as_str())
            } else {
                Value::NULL
            }
        };
        let organization_name = own_name("Organization");
        let household_name = own_name("Household");
        self.contacts.extend([
            Value::UInt(id),
            Value::from(c.contact_type),
            Value::from(c.display_name),
            Value::from(c.sort_name),
            organization_name,
            text(c.first_name),
            text(c.last_name),
            household_name,
            Value::from(c.is_deleted),
            c.api_key
                .as_ref()
                .map_or(Value::NULL, |k| Value::from(k.expose())),
        ]);
        if let Some(email) = &c.email {
            self.emails
                .extend([Value::UInt(id), Value::from(email.as_str())]);
        }
        if let Some(uf_id) = c.uf_id {
            self.ufs
                .extend([Value::Int(uf_id), text(c.email), Value::UInt(id)]);
        }
    }

    fn flush(&mut self, tx: &mut mysql::Transaction<'_>, t: &Tables) -> mysql::Result<()> {
        let inserts = [
            (
                &mut self.contacts,
                Self::CONTACT_COLUMNS,
                format!(
                    "INSERT INTO {} (id, contact_type, display_name, sort_name, organization_name, first_name, last_name, household_name, is_deleted, api_key) VALUES ",
                    t.contact
                ),
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            (
                &mut self.emails,
                Self::EMAIL_COLUMNS,
                format!("INSERT INTO {} (contact_id, email, is_primary, location_type_id) VALUES ", t.email),
                "(?, ?, 1, 1)",
            ),
            (
                &mut self.ufs,
                Self::UF_COLUMNS,
                format!("INSERT INTO {} (domain_id, uf_id, uf_name, contact_id) VALUES ", t.uf),
                "(1, ?, ?, ?)",
            ),
        ];
        for (values, columns, head, row) in inserts {
            let rows = values.len() / columns;
            if rows == 0 {
                continue;
            }
            let mut sql = head;
            sql.push_str(&vec![row; rows].join(", "));
            tx.exec_drop(sql, Params::Positional(std::mem::take(values)))?;
        }
        self.rows = 0;
        Ok(())
    }
}
