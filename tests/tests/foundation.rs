//! The workspace: lifecycle, registration, CRUD, Catalog, MetaSchema, audit, repair.

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Workspace};
use serde_json::json;

use crate::common::{TestHome, cells};

fn note() -> EntityDef {
    EntityDef::new("note")
        .desc("A short note")
        .field(FieldDef::new("title", T::short_text()).desc("Headline"))
        .field(FieldDef::new("body", T::long_text()))
}

fn product() -> EntityDef {
    EntityDef::new("product")
        .field(FieldDef::new("price", T::Float))
        .field(FieldDef::new("qty", T::Integer).default(0))
        .field(FieldDef::new("sku", T::short_text()).unique())
        .field(FieldDef::new("tags", T::array_of(T::short_text())))
        .field(FieldDef::new("vec", T::vector(3)))
}

/// The seed's example, in Rust.
#[tokio::test]
async fn seed_example_routing_note() {
    let h = TestHome::new();
    let ws = h.open("seed", Construction::preset("debug")).await;
    ws.register(note(), false).await.unwrap();
    let id = ws
        .upsert("note", json!({"name": "Routing note", "title": "Where fields live", "body": "Vectors go to vec."}))
        .await
        .unwrap();
    assert_eq!(id, "000042943200010507604878606023630530843197");
    let row = ws.get("note", &id).await.unwrap().expect("row");
    assert_eq!(row["title"], json!("Where fields live"));
    assert_eq!(row["name"], json!("Routing note"));
    let kinds = ws.sql("SELECT subject_id FROM sys_metaschema WHERE kind = 'entity' ORDER BY subject_id").await.unwrap();
    assert_eq!(cells(&kinds), vec![vec!["note"], vec!["sys-catalog"], vec!["sys-metaschema"]]);
    let audit = ws.audit().await.unwrap();
    assert!(audit.catalog.ok(), "{}", audit.to_json());
    assert_eq!(audit.catalog.objects, 1);
    let card = ws.sql("SELECT target_id, target_entity, name, ws FROM sys_catalog").await.unwrap();
    assert_eq!(cells(&card), vec![vec![id.as_str(), "note", "Routing note", "seed"]]);
}

#[tokio::test]
async fn upsert_is_full_replace_set_is_patch_and_delete_reports_existence() {
    let h = TestHome::new();
    let ws = h.open("crud", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let id = ws.upsert("product", json!({"name": "Oak desk", "price": 120.5, "qty": 3, "sku": "D-1"})).await.unwrap();
    assert_eq!(id, "000043833086248548455418193195040947626671");
    ws.upsert("product", json!({"name": "Oak desk", "price": 99})).await.unwrap();
    let row = ws.get("product", &id).await.unwrap().unwrap();
    assert_eq!((row["price"].clone(), row["qty"].clone(), row["sku"].clone()), (json!(99.0), json!(0), json!(null)));
    ws.set("product", json!({"object_id": id, "qty": 7})).await.unwrap();
    let row = ws.get("product", &id).await.unwrap().unwrap();
    assert_eq!((row["price"].clone(), row["qty"].clone()), (json!(99.0), json!(7)));
    let moved = ws.set("product", json!({"object_id": id, "name": "x"})).await;
    assert!(moved.is_ok(), "patching name keeps the id");
    assert!(ws.exists("product", &id).await.unwrap());
    assert_eq!(ws.count("product").await.unwrap(), 1);
    assert!(ws.delete("product", &id).await.unwrap());
    assert!(!ws.delete("product", &id).await.unwrap());
    assert!(ws.get("product", &id).await.unwrap().is_none());
    assert_eq!(ws.count("sys-catalog").await.unwrap(), 0, "the card goes with the row");
}

#[tokio::test]
async fn bad_input_names_entity_field_value_and_writes_nothing() {
    let h = TestHome::new();
    let ws = h.open("bad", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let cases = [
        (json!({"name": "a", "price": "abc"}), "product.price: could not convert string to float: 'abc'"),
        (json!({"name": "a", "colour": "red"}), "Unknown field 'colour' on entity 'product'"),
        (json!({"name": "a", "sku": "x".repeat(300)}), "product.sku: ShortText exceeds 255 characters"),
        (json!({"price": 1}), "Missing object_id for product"),
        (json!({"name": "   "}), "Missing object_id for product"),
        (json!({"name": "a", "vec": [1, 2]}), "product.vec: Vector[3] received dimension 2"),
        (json!({"name": "a", "tags": "one"}), "product.tags: Array expects a list"),
    ];
    for (row, want) in cases {
        let err = ws.upsert("product", row.clone()).await.expect_err(&format!("{row} must fail")).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let typo = ws.upsert("product", json!({"name": "a", "prise": 1})).await.unwrap_err().to_string();
    assert!(typo.contains("Did you mean 'price'?"), "{typo}");
    // A batch with one bad row writes nothing at all.
    let batch = vec![
        json!({"name": "good 1", "price": 1}).as_object().unwrap().clone(),
        json!({"name": "good 2", "price": 2}).as_object().unwrap().clone(),
        json!({"name": "bad", "price": "oops"}).as_object().unwrap().clone(),
    ];
    let err = ws.upsert_many("product", batch).await.unwrap_err().to_string();
    assert!(err.contains("product.price") && err.contains("'oops'"), "{err}");
    assert_eq!(ws.count("product").await.unwrap(), 0);
    assert_eq!(ws.count("sys-catalog").await.unwrap(), 0);
    let dup = vec![json!({"name": "d"}).as_object().unwrap().clone(), json!({"name": "d"}).as_object().unwrap().clone()];
    assert!(ws.upsert_many("product", dup).await.unwrap_err().to_string().contains("duplicate object_id"));
    // A unique clash is refused and the stored row is untouched.
    ws.upsert("product", json!({"name": "one", "sku": "S"})).await.unwrap();
    let clash = ws.upsert("product", json!({"name": "two", "sku": "S"})).await.unwrap_err().to_string();
    assert!(clash.contains("unique"), "{clash}");
    assert_eq!(ws.count("product").await.unwrap(), 1);
    assert!(
        ws.insert_many("product", vec![json!({"name": "one"}).as_object().unwrap().clone()])
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
}

#[tokio::test]
async fn registration_is_idempotent_and_conflicts_are_errors() {
    let h = TestHome::new();
    let ws = h.open("reg", Construction::preset("debug")).await;
    ws.register(note(), false).await.unwrap();
    ws.register(note().desc("other words"), false).await.unwrap();
    let changed = note().field(FieldDef::new("extra", T::Integer));
    let err = ws.register(changed.clone(), false).await.unwrap_err().to_string();
    assert!(err.contains("already registered with a different structure"), "{err}");
    ws.register(changed, true).await.unwrap();
    assert!(ws.entity("note").unwrap().get("extra").is_some());
    let err = ws.register(heavenbase::catalog::system::catalog_entity(), true).await.unwrap_err().to_string();
    assert!(err.contains("fixed system entity"));
    let err = ws.get("nope", "x").await.unwrap_err().to_string();
    assert!(err.contains("no entity 'nope'"));
}

#[tokio::test]
async fn workspace_lifecycle_and_reopen_restores_entities() {
    let h = TestHome::new();
    {
        let ws = h.open("durable", Construction::preset("embedded")).await;
        ws.register(note(), false).await.unwrap();
        ws.register(product(), false).await.unwrap();
        ws.upsert("note", json!({"name": "kept", "title": "t"})).await.unwrap();
    }
    // A different construction for the same id is an error naming both.
    let err = Workspace::open_in(&h.home, "durable", Construction::preset("debug")).await.unwrap_err().to_string();
    assert!(err.contains("preset 'embedded'") && err.contains("preset 'debug'"), "{err}");
    let err = Workspace::load_in(&h.home, "durabel").await.unwrap_err().to_string();
    assert!(err.contains("No registered workspace 'durabel'") && err.contains("Did you mean 'durable'"), "{err}");
    assert!(h.dir.path().join("workspaces/durable/main.sqlite").exists());
    // Reopen in a fresh process state: drop the live handle first.
    let ws = reopen(&h, "durable").await;
    assert_eq!(ws.entities(), vec!["note", "product"]);
    let row = ws.get("note", &heavenbase::catalog::derive_object_id("note", "kept")).await.unwrap().unwrap();
    assert_eq!(row["title"], json!("t"));
    assert_eq!(ws.entity("product").unwrap(), product().validated().unwrap());
    ws.clone().drop().await.unwrap();
    assert!(h.home.get("durable").unwrap().is_none());
    assert!(!h.dir.path().join("workspaces/durable").exists());
    let detached = Workspace::detached_in(&h.home, "scratch", Construction::preset("debug")).await.unwrap();
    assert!(detached.is_detached());
    assert!(Workspace::load_in(&h.home, "scratch").await.is_err());
}

/// Load a workspace as a new process would: no live handle to reuse.
async fn reopen(h: &TestHome, id: &str) -> Workspace {
    Workspace::load_in(&h.home, id).await.unwrap()
}

#[tokio::test]
async fn audit_finds_deleted_and_tampered_cards_and_repair_fixes_both() {
    let h = TestHome::new();
    let ws = h.open("aud", Construction::preset("debug")).await;
    ws.register(note(), false).await.unwrap();
    let a = ws.upsert("note", json!({"name": "alpha"})).await.unwrap();
    let b = ws.upsert("note", json!({"name": "beta"})).await.unwrap();
    let card_a = format!("catalog:note:{a}");
    let card_b = format!("catalog:note:{b}");
    // Delete one card, tamper with another, and plant a dangling one.
    ws.delete_many("sys-catalog", &[card_a.clone()]).await.unwrap();
    ws.set("sys-catalog", json!({"object_id": card_b, "name": "tampered"})).await.unwrap();
    ws.upsert("sys-catalog", json!({"object_id": "catalog:note:ghost", "target_id": "ghost", "target_entity": "note"}))
        .await
        .unwrap();
    let audit = ws.audit().await.unwrap();
    assert!(!audit.catalog.ok());
    assert_eq!(audit.catalog.missing.len(), 1);
    assert_eq!(audit.catalog.missing[0]["object_id"], json!(card_a));
    assert_eq!(audit.catalog.mismatched.len(), 1);
    assert_eq!(audit.catalog.mismatched[0].2, vec!["name"]);
    assert_eq!(audit.catalog.dangling.len(), 1);
    let dry = ws.repair(true).await.unwrap();
    assert_eq!(dry["catalog"]["missing_written"], json!(0));
    assert!(!ws.audit().await.unwrap().catalog.ok(), "dry run writes nothing");
    let fixed = ws.repair(false).await.unwrap();
    assert_eq!(fixed["catalog"]["missing_written"], json!(1));
    assert_eq!(fixed["catalog"]["mismatched_rewritten"], json!(1));
    assert_eq!(fixed["catalog"]["dangling_deleted"], json!(1));
    assert_eq!(fixed["catalog"]["ok"], json!(true));
    assert!(ws.audit().await.unwrap().ok());
    let name = ws.get("sys-catalog", &card_b).await.unwrap().unwrap()["name"].clone();
    assert_eq!(name, json!("beta"));
}

#[tokio::test]
async fn audit_reports_objects_split_between_backends() {
    let h = TestHome::new();
    let ws = h.open("split", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let plan = ws.placement("product").unwrap();
    assert_eq!(plan.home_of("vec"), Some("vec"), "vectors route to the vector backend");
    assert_eq!(plan.home_of("price"), Some("main"));
    let id = ws.upsert("product", json!({"name": "p", "vec": [1, 0, 0]})).await.unwrap();
    // Simulate a write cut off between backends: the vec part is lost.
    let vec_backend = ws.backends().iter().find(|b| b.info().name == "vec").unwrap().clone();
    let rt_group = heavenbase::providers::GroupSpec::new(
        "product",
        "product",
        vec![heavenbase::providers::ColumnSpec::new("vec", T::vector(3))],
        vec![],
    );
    vec_backend.delete(&rt_group, &[id.clone()]).await.unwrap();
    let audit = ws.audit().await.unwrap();
    assert_eq!(audit.partial.len(), 1);
    assert_eq!(audit.partial[0].missing_in, vec!["vec"]);
    ws.repair(false).await.unwrap();
    assert!(ws.audit().await.unwrap().ok());
    assert_eq!(ws.get("product", &id).await.unwrap().unwrap()["vec"], json!(null));
}

#[tokio::test]
async fn concurrent_writes_to_one_object_never_mix() {
    let h = TestHome::new();
    let ws = h.open("conc", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            // Every writer writes price == qty; a mixed row would break that.
            ws.upsert("product", json!({"name": "hot", "price": i as f64, "qty": i, "vec": [i, i, i]})).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let row = ws.get("product", &heavenbase::catalog::derive_object_id("product", "hot")).await.unwrap().unwrap();
    let qty = row["qty"].as_i64().unwrap();
    assert_eq!(row["price"].as_f64().unwrap(), qty as f64);
    assert_eq!(row["vec"], json!([qty as f64, qty as f64, qty as f64]));
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Workspace>();
}

#[tokio::test]
async fn metaschema_rows_describe_entities_fields_storage_indexes_backends() {
    let h = TestHome::new();
    let ws = h.open("meta", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let got = ws
        .sql("SELECT object_id FROM sys_metaschema WHERE subject_id = 'product' OR kind IN ('backend', 'workspace') ORDER BY object_id")
        .await
        .unwrap();
    let ids: Vec<String> = cells(&got).into_iter().map(|r| r[0].clone()).collect();
    for want in [
        "entity:product",
        "field:product.price",
        "field:product.object_id",
        "storage:product.vec.vec.vector",
        "storage:product.price.main.inline",
        "constraint:product.sku.main.unique",
        "backend:main",
        "backend:vec",
        "workspace:meta",
    ] {
        assert!(ids.iter().any(|i| i == want), "missing {want} in {ids:?}");
    }
    // A user upsert of an entity row with a full definition registers it.
    ws.upsert(
        "sys-metaschema",
        json!({"object_id": "entity:memo", "kind": "entity", "subject_id": "memo",
        "meta": {"definition": {"entity_id": "memo", "fields": {"text": "short-text"}}}}),
    )
    .await
    .unwrap();
    ws.upsert("memo", json!({"name": "m", "text": "hello"})).await.unwrap();
    assert_eq!(ws.count("memo").await.unwrap(), 1);
}

/// Large batches are validated in parallel chunks: an error in the last chunk, or
/// a duplicate id across chunks, still rejects the whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_validated_whole() {
    let h = TestHome::new();
    let ws = h.open("large", Construction::preset("debug")).await;
    ws.register(product(), false).await.unwrap();
    let make = |n: usize| -> Vec<heavenbase::Row> {
        (0..n).map(|i| json!({"name": format!("p{i}"), "price": i as f64}).as_object().unwrap().clone()).collect()
    };
    let mut rows = make(40_000);
    rows[39_999].insert("price".into(), json!("not a price"));
    let err = ws.upsert_many("product", rows).await.unwrap_err().to_string();
    assert!(err.contains("product.price") && err.contains("'not a price'"), "{err}");
    let mut rows = make(40_000);
    rows[39_999].insert("name".into(), json!("p0"));
    let err = ws.upsert_many("product", rows).await.unwrap_err().to_string();
    assert!(err.contains("duplicate object_id"), "{err}");
    let mut rows = make(40_000);
    rows[39_998].insert("colour".into(), json!("red"));
    let err = ws.upsert_many("product", rows).await.unwrap_err().to_string();
    assert!(err.contains("Unknown field 'colour'") && err.contains("row 39998"), "{err}");
    assert_eq!(ws.count("product").await.unwrap(), 0);
    let ids = ws.upsert_many("product", make(40_000)).await.unwrap();
    assert_eq!(ids[39_999], heavenbase::catalog::derive_object_id("product", "p39999"));
    assert_eq!(ws.count("product").await.unwrap(), 40_000);
    assert_eq!(ws.get("product", &ids[20_000]).await.unwrap().unwrap()["price"], json!(20000.0));
    assert!(ws.audit().await.unwrap().ok());
}
