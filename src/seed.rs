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

/// The permissions a new store gives a seeded role, as a Standalone site's stock roles
/// have them (separator-bookended, as civicrm_role.permissions stores them).
pub fn role_permissions(role: &str) -> &'static str {
    match role {
        "administrator" | "admin" => "\u{1}all CiviCRM permissions and ACLs\u{1}",
        "api client" => {
            "\u{1}access CiviCRM\u{1}access AJAX API\u{1}view my contact\u{1}authenticate with api key\u{1}"
        }
        "staff" => "\u{1}access CiviCRM\u{1}view all contacts\u{1}edit all contacts\u{1}",
        _ => "\u{1}access CiviCRM\u{1}view my contact\u{1}",
    }
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

/// One naming culture: given names, family names, and whether its names are written in
/// Latin letters (email local parts are built from those; others get a generic one).
struct Culture {
    given: &'static [&'static str],
    family: &'static [&'static str],
    latin: bool,
    /// Relative share of contacts from this culture.
    weight: u32,
}

const CULTURES: &[Culture] = &[
    Culture {
        // English-speaking
        given: &[
            "James",
            "Mary",
            "John",
            "Patricia",
            "Robert",
            "Jennifer",
            "Michael",
            "Linda",
            "William",
            "Elizabeth",
            "David",
            "Barbara",
            "Richard",
            "Susan",
            "Joseph",
            "Jessica",
            "Thomas",
            "Sarah",
            "Charles",
            "Karen",
            "Daniel",
            "Nancy",
            "Matthew",
            "Lisa",
            "Ada",
            "Grace",
            "Alan",
            "Emily",
            "Oliver",
            "Chloe",
            "Harry",
            "Sophie",
        ],
        family: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "Thomas",
            "Moore",
            "Jackson",
            "Martin",
            "Lee",
            "Thompson",
            "White",
            "Harris",
            "Clark",
            "Lewis",
            "Walker",
            "Hall",
            "Young",
            "King",
            "Wright",
            "Hill",
            "Scott",
            "Green",
            "Baker",
            "Adams",
            "Nelson",
            "Carter",
            "Lovelace",
            "Hopper",
            "O'Brien",
            "MacDonald",
            "Smithers",
            "Ann Lee",
        ],
        latin: true,
        weight: 30,
    },
    Culture {
        // Spanish and Portuguese
        given: &[
            "José",
            "María",
            "Juan",
            "Carmen",
            "Luis",
            "Ana",
            "Carlos",
            "Lucía",
            "Javier",
            "Sofía",
            "Miguel",
            "Isabel",
            "Pedro",
            "Valentina",
            "Diego",
            "Camila",
            "João",
            "Mariana",
            "Rafael",
            "Beatriz",
        ],
        family: &[
            "García",
            "Rodríguez",
            "Martínez",
            "Hernández",
            "López",
            "González",
            "Pérez",
            "Sánchez",
            "Ramírez",
            "Torres",
            "Flores",
            "Rivera",
            "Gómez",
            "Díaz",
            "Silva",
            "Santos",
            "Oliveira",
            "Pereira",
            "Costa",
            "de la Cruz",
        ],
        latin: true,
        weight: 14,
    },
    Culture {
        // German, Dutch, French, Italian
        given: &[
            "Lukas",
            "Anna",
            "Jonas",
            "Lea",
            "Felix",
            "Hannah",
            "Zoë",
            "Jürgen",
            "Sanne",
            "Daan",
            "Camille",
            "Louis",
            "Chloé",
            "Théo",
            "Giulia",
            "Marco",
            "Francesca",
            "Luca",
            "Élodie",
            "Søren",
        ],
        family: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "van der Berg",
            "de Vries",
            "Janssen",
            "Dubois",
            "Lefèvre",
            "Moreau",
            "Rossi",
            "Russo",
            "Ferrari",
            "Bianchi",
            "Esposito",
            "Nielsen",
        ],
        latin: true,
        weight: 14,
    },
    Culture {
        // Polish, Czech, Hungarian, Turkish, Vietnamese, Yoruba, Igbo, Swahili (Latin script)
        given: &[
            "Jakub",
            "Zofia",
            "Łukasz",
            "Agnieszka",
            "Tomáš",
            "Eliška",
            "Bence",
            "Réka",
            "Mehmet",
            "Ayşe",
            "Emre",
            "Zeynep",
            "Nguyễn Anh",
            "Thảo",
            "Minh",
            "Oluwaseun",
            "Chiamaka",
            "Adebayo",
            "Ngozi",
            "Amani",
            "Baraka",
            "Wanjiru",
        ],
        family: &[
            "Nowak",
            "Kowalski",
            "Wiśniewska",
            "Dvořák",
            "Novák",
            "Nagy",
            "Kovács",
            "Yılmaz",
            "Kaya",
            "Demir",
            "Şahin",
            "Nguyễn",
            "Trần",
            "Lê",
            "Phạm",
            "Adeyemi",
            "Okafor",
            "Balogun",
            "Eze",
            "Mwangi",
            "Otieno",
            "Kamau",
        ],
        latin: true,
        weight: 12,
    },
    Culture {
        // Chinese, Japanese and Korean, transliterated
        given: &[
            "Wei", "Fang", "Jing", "Li Na", "Hao", "Xiu Ying", "Yuki", "Haruto", "Sakura", "Ren",
            "Min-jun", "Seo-yeon", "Ji-ho", "Hye-jin",
        ],
        family: &[
            "Wang",
            "Li",
            "Zhang",
            "Liu",
            "Chen",
            "Yang",
            "Huang",
            "Zhao",
            "Wu",
            "Zhou",
            "Sato",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Yamada",
            "Kim",
            "Park",
            "Choi",
            "Jung",
        ],
        latin: true,
        weight: 10,
    },
    Culture {
        // Chinese, Japanese and Korean, in their own scripts
        given: &[
            "伟",
            "芳",
            "娜",
            "秀英",
            "敏",
            "静",
            "太郎",
            "花子",
            "翔太",
            "さくら",
            "민준",
            "서연",
            "지호",
            "하은",
        ],
        family: &[
            "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "山田", "佐藤", "鈴木", "高橋", "김",
            "이", "박", "최",
        ],
        latin: false,
        weight: 6,
    },
    Culture {
        // Russian, Ukrainian, Greek
        given: &[
            "Александр",
            "Мария",
            "Дмитрий",
            "Анна",
            "Сергей",
            "Ольга",
            "Олена",
            "Андрій",
            "Γιώργος",
            "Μαρία",
            "Νίκος",
            "Ελένη",
        ],
        family: &[
            "Иванов",
            "Смирнова",
            "Кузнецов",
            "Попова",
            "Соколов",
            "Шевченко",
            "Коваленко",
            "Παπαδόπουλος",
            "Παπαδοπούλου",
            "Γεωργίου",
        ],
        latin: false,
        weight: 5,
    },
    Culture {
        // Arabic, Hebrew, Persian, Hindi, Bengali, Tamil, Thai
        given: &[
            "محمد",
            "فاطمة",
            "أحمد",
            "مريم",
            "יוסף",
            "שרה",
            "علی",
            "زهرا",
            "आरव",
            "प्रिया",
            "রহিম",
            "সুমি",
            "அருண்",
            "லட்சுமி",
            "สมชาย",
            "มาลี",
        ],
        family: &[
            "الحسن",
            "العلي",
            "منصور",
            "כהן",
            "לוי",
            "حسینی",
            "शर्मा",
            "पटेल",
            "রহমান",
            "முருகன்",
            "ศรีสุข",
        ],
        latin: false,
        weight: 4,
    },
    Culture {
        // Arabic, South Asian and Persian names, transliterated
        given: &[
            "Mohammed", "Fatima", "Ahmed", "Aisha", "Omar", "Layla", "Yusuf", "Noor", "Arjun",
            "Priya", "Rahul", "Ananya", "Reza", "Shirin",
        ],
        family: &[
            "Khan", "Ali", "Hussain", "Rahman", "Haddad", "Nasser", "Sharma", "Patel", "Singh",
            "Gupta", "Kumar", "Hosseini", "Karimi",
        ],
        latin: true,
        weight: 10,
    },
];

const ORG_WORDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Riverside",
    "Green Valley",
    "Harbour",
    "Sunrise",
    "Blue Mountain",
    "Maple",
    "Oakwood",
    "Lighthouse",
    "Crescent",
    "Meridian",
    "Pioneer",
    "Summit",
    "Unity",
];
const ORG_KINDS: &[&str] = &[
    "Foundation",
    "Trust",
    "Cooperative",
    "Association",
    "Society",
    "Community Centre",
    "Food Bank",
    "Choir",
    "Football Club",
    "Library Friends",
    "Gmbh",
    "Ltd",
    "Inc.",
];
const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "example.net",
    "mail.example",
    "post.example.de",
    "correo.example.es",
    "example.co.uk",
    "example.fr",
    "example.jp",
    "example.in",
];

/// Share of contacts (per thousand) that get each property.
const PER_MILLE_ORGANIZATION: u32 = 60;
const PER_MILLE_HOUSEHOLD: u32 = 40;
const PER_MILLE_EMAIL: u32 = 880;
const PER_MILLE_KEY: u32 = 50;
const PER_MILLE_CMS_USER: u32 = 120;
const PER_MILLE_DELETED: u32 = 10;

/// `count` synthetic contacts with ids 1..=count, the same for the same `seed`.
///
/// Names come from several cultures and scripts, emails are plausible, a few contacts are
/// organisations, households, CMS users, trashed or hold a key. Keys come from the
/// project's own generator on a seeded source: 32 characters of [A-Za-z0-9], so two are
/// equal with probability about 2^-190 (they are unique in practice, and never real).
pub fn synthetic_contacts(count: usize, seed: u64) -> impl Iterator<Item = SeedContact> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut keys = crate::key::SeededKeySource::new(seed ^ 0x6b65_7973);
    let total_weight: u32 = CULTURES.iter().map(|c| c.weight).sum();
    let mut next_uf_id = 0i64;
    (1..=count as i64).map(move |id| {
        let pick = |rng: &mut rand::rngs::StdRng, list: &[&'static str]| -> &'static str {
            list[rng.random_range(0..list.len())]
        };
        let mut roll = rng.random_range(0..total_weight);
        let culture = CULTURES
            .iter()
            .find(|c| {
                if roll < c.weight {
                    true
                } else {
                    roll -= c.weight;
                    false
                }
            })
            .unwrap_or(&CULTURES[0]);
        let kind = rng.random_range(0..1000);
        let domain = pick(&mut rng, DOMAINS);
        let mut contact = if kind < PER_MILLE_ORGANIZATION {
            let name = format!(
                "{} {}",
                pick(&mut rng, ORG_WORDS),
                pick(&mut rng, ORG_KINDS)
            );
            SeedContact {
                contact_type: "Organization".into(),
                display_name: name.clone(),
                sort_name: name,
                email: Some(format!("info{id}@{domain}")),
                ..SeedContact::default()
            }
        } else if kind < PER_MILLE_ORGANIZATION + PER_MILLE_HOUSEHOLD {
            let family = pick(&mut rng, culture.family);
            let name = format!("{family} Family");
            SeedContact {
                contact_type: "Household".into(),
                display_name: name.clone(),
                sort_name: name,
                email: Some(format!("household{id}@{domain}")),
                ..SeedContact::default()
            }
        } else {
            let given = pick(&mut rng, culture.given);
            let family = pick(&mut rng, culture.family);
            let local = if culture.latin {
                email_local(given, family, id, rng.random_range(0..3))
            } else {
                format!("member{id}")
            };
            SeedContact {
                contact_type: "Individual".into(),
                display_name: format!("{given} {family}"),
                sort_name: format!("{family}, {given}"),
                first_name: Some(given.into()),
                last_name: Some(family.into()),
                email: Some(format!("{local}@{domain}")),
                ..SeedContact::default()
            }
        };
        contact.id = Some(id);
        if rng.random_range(0..1000) >= PER_MILLE_EMAIL {
            contact.email = None;
        }
        contact.is_deleted = rng.random_range(0..1000) < PER_MILLE_DELETED;
        if rng.random_range(0..1000) < PER_MILLE_KEY {
            // A seeded source never fails; a key is simply left out if it somehow did.
            contact.api_key = ApiKey::generate_from(&mut keys).ok();
        }
        if contact.contact_type == "Individual" && rng.random_range(0..1000) < PER_MILLE_CMS_USER {
            next_uf_id += 1;
            contact.uf_id = Some(next_uf_id);
        }
        contact
    })
}

/// An email local part from a Latin-script name: `ada.lovelace`, `alovelace12`, `ada1234`.
fn email_local(given: &str, family: &str, id: i64, style: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter_map(|c| {
                let c = fold_accent(c);
                c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
            })
            .collect()
    };
    let (g, f) = (clean(given), clean(family));
    match style {
        0 => format!("{g}.{f}{}", id % 100),
        1 => format!("{}{f}{id}", g.chars().next().unwrap_or('x')),
        _ => format!("{g}{id}"),
    }
}

/// The unaccented letter for the accented Latin letters the name lists use.
fn fold_accent(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' | 'ą' | 'ạ' | 'ả' => 'a',
        'é' | 'è' | 'ê' | 'ë' | 'ę' | 'ě' | 'É' => 'e',
        'í' | 'ì' | 'î' | 'ï' | 'ı' => 'i',
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ø' | 'ọ' => 'o',
        'ú' | 'ù' | 'û' | 'ü' | 'ů' => 'u',
        'ç' | 'č' => 'c',
        'ñ' | 'ń' => 'n',
        'ł' | 'Ł' => 'l',
        'ś' | 'š' | 'ş' | 'Ş' => 's',
        'ř' => 'r',
        'ž' | 'ż' => 'z',
        'ğ' => 'g',
        'ý' => 'y',
        'đ' | 'Đ' => 'd',
        other => other,
    }
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

    #[test]
    fn synthetic_contacts_are_varied_valid_and_repeatable() {
        let all: Vec<SeedContact> = synthetic_contacts(5000, 9).collect();
        assert_eq!(all.len(), 5000);
        let again: Vec<SeedContact> = synthetic_contacts(5000, 9).collect();
        let other: Vec<SeedContact> = synthetic_contacts(5000, 10).collect();
        let names =
            |v: &[SeedContact]| v.iter().map(|c| c.display_name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&all),
            names(&again),
            "the same seed makes the same contacts"
        );
        assert_ne!(names(&all), names(&other));
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.id, Some(i as i64 + 1));
            assert!(!c.display_name.is_empty() && !c.sort_name.is_empty());
            if let Some(e) = &c.email {
                assert!(e.is_ascii() && e.contains('@'), "{e}");
            }
        }
        let count = |f: &dyn Fn(&SeedContact) -> bool| all.iter().filter(|c| f(c)).count();
        for kind in ["Individual", "Organization", "Household"] {
            assert!(count(&|c| c.contact_type == kind) > 50, "{kind}");
        }
        assert!(
            count(&|c| !c.display_name.is_ascii()) > 500,
            "accents and other scripts"
        );
        assert!(
            count(&|c| c
                .display_name
                .chars()
                .any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)))
                > 20
        );
        assert!(
            count(&|c| c
                .display_name
                .chars()
                .any(|ch| ('\u{0400}'..='\u{04ff}').contains(&ch)))
                > 20
        );
        assert!(count(&|c| c.uf_id.is_some()) > 200);
        assert!(count(&|c| c.is_deleted) > 10);
        let keys: Vec<&ApiKey> = all.iter().filter_map(|c| c.api_key.as_ref()).collect();
        assert!(keys.len() > 100);
        let unique: std::collections::HashSet<&str> = keys.iter().map(|k| k.expose()).collect();
        assert_eq!(unique.len(), keys.len(), "keys are unique");
        for k in keys {
            assert_eq!(k.len(), 32);
            assert!(k.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }
}
