//! Entities as Rust types: #[derive(Entity)], upsert_typed / get_typed /
//! query_typed / sql_typed, typed field references.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use heavenbase::{Construction, Entity, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{TestHome, cells};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Extra {
    color: String,
    sizes: Vec<u32>,
}

/// Every logical type, once required and once optional.
#[derive(Entity, Debug, Clone, PartialEq)]
#[hb(entity = "all-types")]
struct AllTypes {
    name: String,
    /// A short text.
    short: String,
    #[hb(medium_text)]
    medium: String,
    #[hb(long_text)]
    long: Option<String>,
    #[hb(identifier)]
    code: String,
    #[hb(categorical("red", "green"))]
    color: String,
    int: i64,
    small: i32,
    byte: Option<u8>,
    float: f64,
    single: f32,
    flag: bool,
    at: DateTime<Utc>,
    day: NaiveDate,
    took: Duration,
    meta: serde_json::Value,
    blob: Vec<u8>,
    #[hb(vector(3))]
    emb: Vec<f32>,
    tags: Vec<String>,
    scores: Option<Vec<i64>>,
    missing: Option<f64>,
    #[hb(json)]
    extra: Extra,
}

fn sample(i: i64) -> AllTypes {
    AllTypes {
        name: format!("item {i}"),
        short: format!("short {i}"),
        medium: "m".repeat(300),
        long: (i % 2 == 0).then(|| "l".repeat(5000)),
        code: format!("c{i}"),
        color: if i % 2 == 0 { "red".into() } else { "green".into() },
        int: -9_000_000_000 + i,
        small: -7 * i as i32,
        byte: (i % 3 != 0).then_some(200),
        float: 0.1 + i as f64,
        single: 1.5,
        flag: i % 2 == 1,
        at: Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::milliseconds(678 + i),
        day: NaiveDate::from_ymd_opt(1969, 7, 20).unwrap() + chrono::Duration::days(i),
        took: Duration::from_millis(1500 + i as u64),
        meta: json!({"k": i, "nested": [1, {"x": null}]}),
        blob: vec![0, 159, 146, 150, i as u8],
        emb: vec![i as f32, 0.5, -1.0],
        tags: vec!["a".into(), format!("t{i}")],
        scores: (i % 2 == 0).then(|| vec![i, i * 10]),
        missing: None,
        extra: Extra { color: "blue".into(), sizes: vec![1, 2, i as u32] },
    }
}

#[tokio::test]
async fn every_logical_type_round_trips_through_a_derived_struct() {
    // The debug preset (SQLite in memory, vectors in memory) and the embedded one
    // (a SQLite file, vectors in Lance).
    for preset in ["debug", "embedded"] {
        let h = TestHome::new();
        let ws = h.open("typed", Construction::preset(preset)).await;
        ws.register_typed::<AllTypes>().await.unwrap();
        ws.register_typed::<AllTypes>().await.expect("the same structure again is a no-op");
        let def = ws.entity("all-types").unwrap();
        let types: Vec<(&str, &str, bool)> = def
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.ty.type_id(), f.required))
            .filter(|(n, ..)| *n != "object_id")
            .collect();
        assert_eq!(
            types,
            vec![
                ("name", "short-text", false),
                ("short", "short-text", true),
                ("medium", "medium-text", true),
                ("long", "long-text", false),
                ("code", "identifier", true),
                ("color", "categorical", true),
                ("int", "integer", true),
                ("small", "integer", true),
                ("byte", "integer", false),
                ("float", "float", true),
                ("single", "float", true),
                ("flag", "boolean", true),
                ("at", "timestamp", true),
                ("day", "date", true),
                ("took", "duration", true),
                ("meta", "json", true),
                ("blob", "artifact", true),
                ("emb", "vector", true),
                ("tags", "array", true),
                ("scores", "array", false),
                ("missing", "float", false),
                ("extra", "json", true),
            ]
        );
        assert_eq!(def.get("short").unwrap().desc, "A short text.");

        let items: Vec<AllTypes> = (0..6).map(sample).collect();
        let ids = ws.upsert_many_typed(&items).await.unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], heavenbase::catalog::derive_object_id("all-types", "item 0"), "{preset}: ids derive from name");

        for (id, item) in ids.iter().zip(&items) {
            let back = ws.get_typed::<AllTypes>(id).await.unwrap().expect("row");
            assert_eq!(&back, item, "{preset}");
        }
        assert!(ws.get_typed::<AllTypes>("no-such-id").await.unwrap().is_none());

        // The same row seen untyped: the stored values are the struct's.
        let row = ws.get("all-types", &ids[1]).await.unwrap().unwrap();
        assert_eq!(row["took"], json!(1501), "{preset}: durations are milliseconds");
        assert_eq!(row["day"], json!("1969-07-21"));
        assert_eq!(row["meta"], json!({"k": 1, "nested": [1, {"x": null}]}));
        assert_eq!(row["extra"], json!({"color": "blue", "sizes": [1, 2, 1]}));
        assert_eq!(row["byte"], json!(200));
        assert_eq!(row["scores"], json!(null));
        let sql = ws.sql("SELECT \"int\", small, took, flag, tags[2] AS t FROM all_types WHERE name = 'item 3'").await.unwrap();
        assert_eq!(cells(&sql), vec![vec!["-8999999997", "-21", "1503", "true", "t3"]], "{preset}");

        // A second upsert fully replaces, as upsert does.
        let mut changed = items[2].clone();
        changed.long = None;
        changed.float = -1.25;
        ws.upsert_typed(&changed).await.unwrap();
        assert_eq!(ws.get_typed::<AllTypes>(&ids[2]).await.unwrap().unwrap(), changed);
        assert_eq!(ws.count("all-types").await.unwrap(), 6);
        assert!(ws.audit().await.unwrap().ok(), "{preset}");
    }
}

/// A note (the seed's example as a Rust type).
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    name: String,
    /// Headline
    title: String,
    #[hb(long_text)]
    body: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct EntityRow {
    subject_id: String,
}

#[tokio::test]
async fn the_seed_example_as_a_rust_type() {
    let h = TestHome::new();
    let ws = h.open("notes", Construction::preset("embedded")).await;
    ws.register_typed::<Note>().await.unwrap();
    let note = Note {
        name: "Routing note".into(),
        title: "Where fields live".into(),
        body: "Vectors go to vec, the rest to main.".into(),
    };
    let id = ws.upsert_typed(&note).await.unwrap();
    assert_eq!(id, "000042943200010507604878606023630530843197");
    assert_eq!(ws.get_typed::<Note>(&id).await.unwrap(), Some(note.clone()));
    // The untyped doors see the same row, described by the doc comments.
    assert_eq!(ws.get("note", &id).await.unwrap().unwrap()["title"], json!("Where fields live"));
    assert_eq!(ws.entity("note").unwrap().get("title").unwrap().desc, "Headline");
    let kinds: Vec<EntityRow> =
        ws.sql_typed("SELECT subject_id FROM sys_metaschema WHERE kind = 'entity' ORDER BY subject_id").await.unwrap();
    assert_eq!(
        kinds,
        vec![
            EntityRow { subject_id: "note".into() },
            EntityRow { subject_id: "sys-catalog".into() },
            EntityRow { subject_id: "sys-metaschema".into() },
        ]
    );
    assert!(ws.audit().await.unwrap().ok());
    drop(ws);
    // Reopened, the struct's entity is the stored one.
    let ws = h.open("notes", Construction::preset("embedded")).await;
    ws.register_typed::<Note>().await.expect("same structure after reopen");
    assert_eq!(ws.query_typed::<Note>().unwrap().await.unwrap(), vec![note]);
}

#[derive(Entity, Debug, Clone, PartialEq)]
struct OakDesk {
    name: String,
    #[hb(index)]
    price: f64,
    qty: i64,
    tags: Vec<String>,
    #[hb(vector(3))]
    emb: Option<Vec<f32>>,
    #[hb(long_text)]
    blurb: Option<String>,
}

fn desk(i: usize) -> OakDesk {
    OakDesk {
        name: format!("desk {i:02}"),
        price: 50.0 + 10.0 * i as f64,
        qty: (i % 4) as i64,
        tags: if i % 3 == 0 { vec!["sale".into()] } else { vec![] },
        emb: (i % 5 != 0).then(|| vec![1.0, i as f32 / 10.0, 0.0]),
        blurb: Some(if i % 2 == 0 { "solid oak, wide drawers".into() } else { "pine top".into() }),
    }
}

#[tokio::test]
async fn typed_queries_filter_order_and_search_by_field_references() {
    let h = TestHome::new();
    let ws = h.open("shop", Construction::preset("debug")).await;
    ws.register_typed::<OakDesk>().await.unwrap();
    assert_eq!(OakDesk::ENTITY_ID, "oak-desk", "the reference's kebab of the struct name");
    let desks: Vec<OakDesk> = (0..20).map(desk).collect();
    ws.upsert_many_typed(&desks).await.unwrap();
    let f = OakDesk::fields();

    let cheap = ws.query_typed::<OakDesk>().unwrap().where_(f.price.lt(100.0)).order_by(f.price, true).await.unwrap();
    let expected: Vec<OakDesk> = desks.iter().filter(|d| d.price < 100.0).rev().cloned().collect();
    assert_eq!(cheap, expected);
    assert_eq!(cheap.len(), 5);

    let some = ws
        .query_typed::<OakDesk>()
        .unwrap()
        .where_(heavenbase::Filter::And(vec![f.qty.is_in([1, 3]), f.tags.array_contains("sale")]))
        .order_by("name", false)
        .fetch()
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["desk 03", "desk 09", "desk 15"]);

    let page = ws.query_typed::<OakDesk>().unwrap().order_by(f.price, false).offset(2).limit(3).await.unwrap();
    assert_eq!(page, desks[2..5].to_vec());
    let no_vector = ws.query_typed::<OakDesk>().unwrap().where_(f.emb.is_null()).order_by(f.name, false).await.unwrap();
    assert_eq!(no_vector.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["desk 00", "desk 05", "desk 10", "desk 15"]);

    // Nearest by the vector field: cosine to [1, 0.7, 0] is largest for desk 07, then 08 (0.99795), then 06 (0.99753).
    let near = ws.query_typed::<OakDesk>().unwrap().near(f.emb, vec![1.0, 0.7, 0.0], Some(3), None).unwrap().await.unwrap();
    assert_eq!(near.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["desk 07", "desk 08", "desk 06"]);

    // Full-text search on the LongText field (indexed in the search backend).
    let oak = ws.query_typed::<OakDesk>().unwrap().search(&[f.blurb], "wide drawers", Some(50)).unwrap().await.unwrap();
    assert_eq!(oak.len(), 10);
    assert!(oak.iter().all(|d| d.blurb.as_deref() == Some("solid oak, wide drawers")));

    #[derive(Debug, Deserialize, PartialEq)]
    struct Stock {
        qty: i64,
        n: i64,
        avg_price: f64,
        first: Option<String>,
    }
    let stock: Vec<Stock> = ws
        .sql_typed(
            "SELECT qty, count(*) AS n, avg(price) AS avg_price, min(name) AS first FROM oak_desk GROUP BY qty ORDER BY qty",
        )
        .await
        .unwrap();
    assert_eq!(stock.len(), 4);
    assert_eq!(stock[1], Stock { qty: 1, n: 5, avg_price: 140.0, first: Some("desk 01".into()) });
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[hb(entity = "reading")]
struct LooseReading {
    name: String,
    value: Option<f64>,
    #[hb(vector(2))]
    at: Option<Vec<f32>>,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[hb(entity = "reading")]
struct StrictReading {
    name: String,
    value: f64,
}

#[tokio::test]
async fn typed_errors_name_the_entity_field_and_row_and_write_nothing() {
    let h = TestHome::new();
    let ws = h.open("typed-errors", Construction::preset("debug")).await;
    // Writing before registering names the entity.
    let e = ws.upsert_typed(&StrictReading { name: "a".into(), value: 1.0 }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownEntity, "{e}");
    ws.register_typed::<LooseReading>().await.unwrap();
    // Another struct of the same entity with another structure is refused.
    let e = ws.register_typed::<StrictReading>().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    let id = ws.upsert_typed(&LooseReading { name: "empty".into(), value: None, at: None }).await.unwrap();
    // insert_many_typed refuses a row that exists, and writes none of its batch.
    let again = [
        LooseReading { name: "fresh".into(), value: Some(3.0), at: None },
        LooseReading { name: "empty".into(), value: Some(4.0), at: None },
    ];
    let e = ws.insert_many_typed(&again).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UniqueViolation, "{e}");
    assert_eq!(ws.count("reading").await.unwrap(), 1);
    let fresh = ws.insert_many_typed(&again[..1]).await.unwrap();
    assert_eq!(ws.get_typed::<LooseReading>(&fresh[0]).await.unwrap(), Some(again[0].clone()));
    ws.delete("reading", &fresh[0]).await.unwrap();
    // A NULL where the struct has no Option is an error naming where.
    let e = ws.get_typed::<StrictReading>(&id).await.unwrap_err();
    assert!(e.to_string().contains("reading.value") && e.to_string().contains(&id), "{e}");

    // A batch with one bad row writes nothing: a vector of the wrong length.
    let batch = vec![
        LooseReading { name: "r1".into(), value: Some(1.0), at: Some(vec![0.0, 1.0]) },
        LooseReading { name: "r2".into(), value: Some(2.0), at: Some(vec![0.0, 1.0, 2.0]) },
    ];
    let e = ws.upsert_many_typed(&batch).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
    assert!(e.to_string().contains("reading.at"), "{e}");
    assert_eq!(ws.count("reading").await.unwrap(), 1);

    // Rows that do not fit the target type of sql_typed say which statement.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        value: String,
    }
    let e = ws.sql_typed::<Wrong>("SELECT 1.5 AS value").await.unwrap_err();
    assert!(e.to_string().contains("SELECT 1.5 AS value"), "{e}");
    assert!(ws.upsert_many_typed::<LooseReading>(&[]).await.unwrap().is_empty());
}
