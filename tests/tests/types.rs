//! Every logical type's coercion and error message; the object_id vectors.

use heavenbase::catalog::types::LogicalType as T;
use heavenbase::catalog::{EntityDef, derive_object_id};
use serde_json::{Value, json};

fn ok(t: &T, v: Value) -> Value {
    t.coerce(&v).unwrap_or_else(|e| panic!("{} should accept {v}: {e}", t.type_id()))
}

fn err(t: &T, v: Value) -> String {
    t.coerce(&v).expect_err(&format!("{} should reject {v}", t.type_id()))
}

#[test]
fn derivation_vectors_match_the_reference() {
    assert_eq!(derive_object_id("product", "Oak desk"), "000043833086248548455418193195040947626671");
    assert_eq!(derive_object_id("product", "Café"), "000160934182998573503060262101206477935985");
    assert_eq!(derive_object_id("doc", "A"), "000329567380649577347136246769951968641534");
    assert_eq!(derive_object_id("t", "5"), "000332413151770930453437064695516203162788");
    assert_eq!(derive_object_id("note", "Routing note"), "000042943200010507604878606023630530843197");
}

#[test]
fn text_types_enforce_limits_without_truncation() {
    assert_eq!(ok(&T::short_text(), json!("hello")), json!("hello"));
    assert_eq!(ok(&T::short_text(), json!(5)), json!("5"));
    assert_eq!(ok(&T::short_text(), json!("é".repeat(255))), json!("é".repeat(255)));
    assert_eq!(err(&T::short_text(), json!("x".repeat(256))), "ShortText exceeds 255 characters");
    assert_eq!(err(&T::medium_text(), json!("x".repeat(4096))), "MediumText exceeds 4095 characters");
    assert_eq!(err(&T::long_text(), json!("x".repeat(65536))), "LongText exceeds 65535 characters");
    assert_eq!(err(&T::identifier(), json!("x".repeat(64))), "Identifier exceeds 63 characters");
    assert_eq!(err(&T::identifier(), json!("")), "Identifier cannot be empty");
    assert_eq!(ok(&T::identifier(), json!(12)), json!("12"));
    assert!(err(&T::short_text(), json!({"a": 1})).contains("expects text"));
}

#[test]
fn numbers_and_booleans() {
    assert_eq!(ok(&T::Integer, json!("7")), json!(7));
    assert_eq!(ok(&T::Integer, json!(7.9)), json!(7));
    assert!(err(&T::Integer, json!("seven")).contains("'seven'"));
    assert!(err(&T::Integer, json!(true)).contains("Integer expects a number"));
    assert_eq!(ok(&T::Float, json!("2.5")), json!(2.5));
    assert_eq!(err(&T::Float, json!("abc")), "could not convert string to float: 'abc'");
    for (v, want) in [
        (json!("yes"), json!(true)),
        (json!("off"), json!(false)),
        (json!(1), json!(true)),
        (json!(""), json!(false)),
        (json!("none"), Value::Null),
    ] {
        assert_eq!(ok(&T::Boolean, v), want);
    }
    assert_eq!(err(&T::Boolean, json!("maybe")), "Cannot coerce 'maybe' to Boolean");
    assert_eq!(err(&T::Boolean, json!(2)), "Cannot coerce 2 to Boolean");
}

#[test]
fn time_types_are_real_timestamps_and_dates() {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    assert_eq!(T::Timestamp.arrow_type(), DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())));
    assert_eq!(T::Date.arrow_type(), DataType::Date32);
    assert_eq!(ok(&T::Timestamp, json!("2024-01-02T03:04:05Z")), json!("2024-01-02T03:04:05.000Z"));
    assert_eq!(ok(&T::Timestamp, json!("2024-01-02T05:04:05+02:00")), json!("2024-01-02T03:04:05.000Z"));
    assert_eq!(ok(&T::Timestamp, json!(0)), json!("1970-01-01T00:00:00.000Z"));
    assert_eq!(ok(&T::Timestamp, json!("2024-01-02")), json!("2024-01-02T00:00:00.000Z"));
    assert_eq!(err(&T::Timestamp, json!(true)), "Timestamp does not accept a boolean");
    assert!(err(&T::Timestamp, json!("yesterday")).contains("ISO 8601"));
    assert_eq!(ok(&T::Duration, json!(1500)), json!(1500));
    assert_eq!(err(&T::Duration, json!(-5)), "Duration cannot be negative, got -5");
    assert_eq!(ok(&T::Date, json!("2024-02-29")), json!("2024-02-29"));
    assert_eq!(ok(&T::Date, json!("2024-02-29T23:30:00-02:00")), json!("2024-03-01"));
    assert_eq!(err(&T::Date, json!(5)), "Date expects 'YYYY-MM-DD' text, got 5");
    assert!(err(&T::Date, json!("2024-02-30")).contains("YYYY-MM-DD"));
}

#[test]
fn structured_types() {
    let cat = T::categorical(["red", "green"]);
    assert_eq!(ok(&cat, json!("red")), json!("red"));
    assert_eq!(err(&cat, json!("blue")), "Categorical value 'blue' is not one of ('red', 'green')");
    let arr = T::array_of(T::Integer);
    assert_eq!(ok(&arr, json!(["1", 2])), json!([1, 2]));
    assert_eq!(err(&arr, json!("1,2")), "Array expects a list, got '1,2'");
    assert!(err(&arr, json!([1, "x"])).contains("'x'"));
    assert_eq!(ok(&T::Json, json!({"a": [1, true]})), json!({"a": [1, true]}));
    assert_eq!(ok(&T::Json, json!("{\"k\": 1}")), json!({"k": 1}));
    assert_eq!(ok(&T::Json, json!("plain")), json!("plain"));
    assert_eq!(ok(&T::vector(3), json!([1, 0.5, -2])), json!([1.0, 0.5, -2.0]));
    assert_eq!(err(&T::vector(3), json!([1, 2])), "Vector[3] received dimension 2");
    assert_eq!(ok(&T::Artifact, json!("hi")), json!({"base64": "aGk="}));
    assert_eq!(ok(&T::Artifact, json!({"base64": "aGk="})), json!({"base64": "aGk="}));
    assert!(err(&T::Artifact, json!(3)).contains("Artifact expects"));
}

#[test]
fn type_descriptors_parse_every_form() {
    assert_eq!(T::parse(&json!("short-text")).unwrap(), T::short_text());
    assert_eq!(T::parse(&json!("ShortText")).unwrap(), T::short_text());
    assert_eq!(T::parse(&json!("interval")).unwrap(), T::Duration);
    assert_eq!(T::parse(&json!("vector[3]")).unwrap(), T::vector(3));
    assert_eq!(T::parse(&json!("array[integer]")).unwrap(), T::array_of(T::Integer));
    assert_eq!(T::parse(&json!({"dtype": "short-text", "max_chars": 10})).unwrap(), T::ShortText { max_chars: 10 });
    assert_eq!(T::parse(&json!("int")).unwrap_err().to_string(), "Unknown logical type 'int'");
    for t in [
        T::identifier(),
        T::short_text(),
        T::Integer,
        T::Float,
        T::Boolean,
        T::Timestamp,
        T::Duration,
        T::Date,
        T::categorical(["a"]),
        T::array_of(T::short_text()),
        T::Json,
        T::vector(4),
        T::Artifact,
        T::long_text(),
        T::medium_text(),
    ] {
        assert_eq!(T::parse(&t.to_json()).unwrap(), t, "round trip of {}", t.type_id());
    }
    assert_eq!(T::vector(3).pg_type(), "float4[]");
    assert_eq!(T::Json.pg_type(), "jsonb");
    assert_eq!(T::Timestamp.pg_type(), "timestamptz");
    assert_eq!(T::array_of(T::short_text()).pg_type(), "varchar[]");
}

#[test]
fn entity_json_form_and_naming_rules() {
    let def = EntityDef::from_json(&json!({
        "entity_id": "book", "desc": "Books",
        "fields": {"title": {"type": "short-text", "required": true, "index": true}, "pages": "integer",
                   "tags": {"type": "array[short-text]"}, "vec": "vector[3]"},
        "constraints": [{"fields": ["title"]}],
    }))
    .unwrap();
    let names: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["object_id", "name", "title", "pages", "tags", "vec"]);
    assert!(def.get("title").unwrap().required && def.get("title").unwrap().index);
    assert_eq!(EntityDef::from_json(&def.to_json()).unwrap(), def);
    assert!(EntityDef::from_json(&json!({"id": "x"})).unwrap_err().to_string().contains("entity_id, not id"));
    let bad = EntityDef::from_json(&json!({"entity_id": "Bad Name", "fields": {}})).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "Invalid entity_id 'Bad Name'; use lower-case letters, digits, '-' or '_', starting with a letter"
    );
    let bad = EntityDef::from_json(&json!({"entity_id": "ok", "fields": {"_x": "integer"}})).unwrap_err();
    assert!(bad.to_string().contains("Invalid field name '_x'"));
    let bad =
        EntityDef::from_json(&json!({"entity_id": "ok", "fields": {"n": {"type": "integer", "default": "x"}}})).unwrap_err();
    assert!(bad.to_string().contains("ok.n: default"));
    // Storage strategies: the reference's identifiers and class names, nothing else.
    let def = EntityDef::from_json(&json!({"entity_id": "ok", "fields": {
        "a": {"type": "integer", "stores": [{"to": "main", "strategy": "inline"}]},
        "b": {"type": "long-text", "stores": [{"to": "search", "strategy": "InvertedIndex", "optional": true}]}}}))
    .unwrap();
    assert_eq!(def.get("a").unwrap().stores[0].strategy, Some(heavenbase::catalog::Strategy::Inline));
    assert_eq!(def.get("b").unwrap().stores[0].strategy, Some(heavenbase::catalog::Strategy::Inverted));
    assert_eq!(EntityDef::from_json(&def.to_json()).unwrap(), def);
    let bad = EntityDef::from_json(&json!({"entity_id": "ok", "fields": {
        "a": {"type": "integer", "stores": [{"to": "main", "strategy": "inlined"}]}}}))
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "ok.a: unknown storage strategy \"inlined\"; one of inline, json, side, sparse-gram, vector, inverted, graph"
    );
}

/// The one type map: every logical type has one layout, and its Arrow type and
/// the Postgres type clients see are the layout's.
#[test]
fn one_type_map_gives_arrow_and_postgres_types() {
    use heavenbase::catalog::PhysicalType as P;
    let cases = [
        (T::identifier(), P::Text, "varchar(63)"),
        (T::short_text(), P::Text, "varchar(255)"),
        (T::categorical(["ab", "abcd"]), P::Text, "varchar(4)"),
        (T::Integer, P::Int, "int8"),
        (T::Duration, P::Int, "int8"),
        (T::Float, P::Float, "float8"),
        (T::Boolean, P::Bool, "bool"),
        (T::Timestamp, P::Timestamp, "timestamptz"),
        (T::Date, P::Date, "date"),
        (T::Json, P::Json, "jsonb"),
        (T::Artifact, P::Bytes, "bytea"),
        (T::vector(3), P::Vector { dim: 3 }, "float4[]"),
        (T::array_of(T::Integer), P::List(Box::new(P::Int)), "int8[]"),
        (T::array_of(T::Timestamp), P::List(Box::new(P::Timestamp)), "timestamptz[]"),
        (T::Array { item: None }, P::List(Box::new(P::Json)), "jsonb"),
    ];
    for (t, physical, pg) in cases {
        assert_eq!(t.physical(), physical, "{}", t.type_id());
        assert_eq!(t.arrow_type(), physical.arrow_type(), "{}", t.type_id());
        assert_eq!(t.pg_type(), pg, "{}", t.type_id());
    }
}

/// The one builder reads back what backends hand over: SQLite's value classes
/// (dates as text, vectors as little-endian blobs, lists as JSON text) and
/// Postgres' (typed values, JSON), and result columns by Arrow type.
#[test]
fn the_builder_lays_out_stored_values() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Date32Type, Float32Type, Int32Type, Int64Type};
    use heavenbase::catalog::{ColumnBuilder, Stored};

    let mut date = ColumnBuilder::new(&T::Date, 2);
    date.push_stored(Stored::Text("1970-01-03")).unwrap();
    date.push_stored(Stored::Date(5)).unwrap();
    let date = date.finish();
    assert_eq!(date.as_primitive::<Date32Type>().values().to_vec(), vec![2, 5]);
    let mut bad = ColumnBuilder::new(&T::Date, 1);
    assert!(bad.push_stored(Stored::Text("not a date")).is_err());

    let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut vector = ColumnBuilder::new(&T::vector(2), 3);
    vector.push_stored(Stored::Bytes(&bytes)).unwrap();
    vector.push_stored(Stored::Floats(&[3.0, 4.0])).unwrap();
    vector.push_stored(Stored::Floats(&[1.0])).unwrap(); // wrong dimension reads as NULL
    let vector = vector.finish();
    let list = vector.as_fixed_size_list();
    assert_eq!(list.value(0).as_primitive::<Float32Type>().values().to_vec(), vec![1.5, -2.0]);
    assert_eq!(list.value(1).as_primitive::<Float32Type>().values().to_vec(), vec![3.0, 4.0]);
    assert!(list.is_null(2));

    let mut tags = ColumnBuilder::new(&T::array_of(T::Integer), 2);
    tags.push_stored(Stored::Text("[1, 2]")).unwrap();
    tags.push_stored(Stored::Json(&json!([3]))).unwrap();
    let tags = tags.finish();
    let tags = tags.as_list::<i32>();
    assert_eq!(tags.value(0).as_primitive::<Int64Type>().values().to_vec(), vec![1, 2]);
    assert_eq!(tags.value(1).as_primitive::<Int64Type>().values().to_vec(), vec![3]);

    let mut doc = ColumnBuilder::new(&T::Json, 1);
    doc.push_stored(Stored::Json(&json!({"a": [1, true]}))).unwrap();
    assert_eq!(doc.finish().as_string::<i32>().value(0), r#"{"a":[1,true]}"#);

    // A federated result column typed Int32: read wide, cast at the end.
    let mut narrow = ColumnBuilder::for_arrow(&DataType::Int32, 2).unwrap();
    narrow.push_stored(Stored::Int(7)).unwrap();
    narrow.push_stored(Stored::Null).unwrap();
    let narrow = narrow.finish();
    assert_eq!(narrow.data_type(), &DataType::Int32);
    assert_eq!((narrow.as_primitive::<Int32Type>().value(0), narrow.is_null(1)), (7, true));
    assert!(ColumnBuilder::for_arrow(&DataType::Decimal128(10, 2), 1).is_none());
}

/// Generated ids: 42 digits like derived ids, unique, and increasing.
#[test]
fn generated_ids_are_unique_and_ordered() {
    let ids: Vec<String> = (0..10_000).map(|_| heavenbase::catalog::generate_object_id()).collect();
    assert!(ids.iter().all(|id| id.len() == 42 && id.bytes().all(|b| b.is_ascii_digit())));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
}
