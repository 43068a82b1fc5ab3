//! The query builder and the JSON query language, over the same three placements.

use heavenbase::{Filter, FilterOp, Workspace};
use serde_json::{Value, json};

use crate::common::TestHome;
use crate::sql::load;

async fn names(ws: &Workspace, q: Value) -> Vec<String> {
    let rows = ws.query_json("product", &q).unwrap().rows().await.unwrap_or_else(|e| panic!("{q}: {e}"));
    rows.iter().map(|r| r["name"].as_str().unwrap_or("NULL").to_string()).collect()
}

#[tokio::test]
async fn json_queries_agree_across_placements() {
    let h = TestHome::new();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"filter": {"price": {"$lt": 15}}, "select": ["name"]}), vec!["alpha"]),
        (json!({"filter": {"price": {"$gte": 20}}, "order": ["-price"], "select": ["name", "price"]}), vec!["delta", "beta"]),
        // ne matches NULL rows; $not is the complement over all rows.
        (json!({"filter": {"price": {"$ne": 20}}, "order": ["name"], "select": ["name"]}), vec!["alpha", "delta", "gamma"]),
        (json!({"filter": {"$not": {"price": {"$gt": 15}}}, "order": ["name"], "select": ["name"]}), vec!["alpha", "gamma"]),
        (json!({"filter": {"price": null}, "select": ["name"]}), vec!["gamma"]),
        (json!({"filter": {"qty": {"$in": [1, null]}}, "order": ["name"], "select": ["name"]}), vec!["alpha", "delta"]),
        (json!({"filter": {"title": {"$match": "DESK"}}, "select": ["name"]}), vec!["alpha"]),
        (json!({"filter": {"title": {"$contains": "Desk"}}, "select": ["name"]}), vec![]),
        (json!({"filter": {"title": {"$like": "%a_p"}}, "select": ["name"]}), vec!["gamma"]),
        (json!({"filter": {"title": {"$ilike": "ALPHA%"}}, "select": ["name"]}), vec!["alpha"]),
        (json!({"filter": {"title": {"$regex": "ch.ir$"}}, "select": ["name"]}), vec!["beta"]),
        (json!({"filter": {"title": {"$starts_with": "Gam"}}, "select": ["name"]}), vec!["gamma"]),
        (json!({"filter": {"title": {"$ends_with": "desk"}}, "select": ["name"]}), vec!["alpha"]),
        (json!({"filter": {"tags": {"$contains": "wood"}}, "select": ["name"]}), vec!["alpha"]),
        (
            json!({"filter": {"tags": {"$array_contains": "office"}}, "order": ["name"], "select": ["name"]}),
            vec!["alpha", "beta"],
        ),
        (
            json!({"filter": {"tags": {"$contained_in": ["office"]}}, "order": ["name"], "select": ["name"]}),
            vec!["beta", "gamma"],
        ),
        (json!({"filter": {"meta.color": "red"}, "order": ["name"], "select": ["name"]}), vec!["alpha", "delta"]),
        (json!({"filter": {"meta.color": {"$in": ["blue"]}}, "select": ["name"]}), vec!["beta"]),
        (json!({"filter": {"meta.color": true}, "select": ["name"]}), vec![]),
        (
            json!({"filter": {"$or": [{"price": {"$gt": 30}}, {"qty": 3}]}, "order": ["name"], "select": ["name"]}),
            vec!["delta", "gamma"],
        ),
        (json!({"filter": {"$and": [{"active": true}, {"day": {"$gte": "2024-01-01"}}]}, "select": ["name"]}), vec!["alpha"]),
        (json!({"filter": {"created": {"$gt": "2024-03-01T00:00:00Z"}}, "select": ["name"]}), vec!["beta"]),
        (json!({"order": ["price"], "select": ["name"], "limit": 2, "offset": 1}), vec!["beta", "delta"]),
        // NULLs last in both directions.
        (json!({"order": ["-price"], "select": ["name"]}), vec!["delta", "beta", "alpha", "gamma"]),
    ];
    for placement in ["sqlite", "sqlite+inmem", "inmem+sqlite"] {
        let ws = load(&h, placement).await;
        for (q, want) in &cases {
            assert_eq!(names(&ws, q.clone()).await, *want, "[{placement}] {q}");
        }
        let rows = ws
            .query_json("product", &json!({"select": ["meta.color"], "filter": {"name": "alpha"}}))
            .unwrap()
            .rows()
            .await
            .unwrap();
        assert_eq!(rows[0]["meta.color"], json!("red"), "[{placement}] JSON path column");
        assert!(rows[0].contains_key("object_id"), "object_id stays in projections");
        let agg = ws
            .query_json(
                "product",
                &json!({"group_by": ["active"], "aggregate": {"n": {"count": {"field": "object_id"}},
                "total": {"sum": {"field": "qty"}}, "mean": {"avg": {"field": "price"}}}, "having": {"n": {"$gte": 1}}}),
            )
            .unwrap()
            .rows()
            .await
            .unwrap();
        assert_eq!(
            Value::Array(agg.into_iter().map(Value::Object).collect()),
            json!([{"active": false, "n": 1, "total": 2, "mean": 20.0}, {"active": true, "n": 2, "total": 4, "mean": 10.0},
                   {"active": null, "n": 1, "total": null, "mean": 40.0}]),
            "[{placement}] group by"
        );
        let n = ws.query("product").unwrap().where_(Filter::gt("price", 5)).count().rows().await.unwrap();
        assert_eq!(n[0]["count"], json!(3), "[{placement}] terminal count");
    }
}

#[tokio::test]
async fn builder_and_json_compile_to_the_same_plan() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let built = ws
        .query("product")
        .unwrap()
        .where_(Filter::lt("price", 30))
        .where_(Filter::op("title", FilterOp::Like, "%a%"))
        .select(["name", "price"])
        .order_by("price", true)
        .limit(5);
    let parsed = ws
        .query_json(
            "product",
            &json!({"filter": {"$and": [{"price": {"$lt": 30}}, {"title": {"$like": "%a%"}}]},
            "select": ["name", "price"], "order": ["-price"], "limit": 5}),
        )
        .unwrap();
    assert_eq!(built.rows().await.unwrap(), parsed.rows().await.unwrap());
    let names: Vec<_> = built.rows().await.unwrap().iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, vec![json!("beta"), json!("alpha")]);
    let explain = built.explain().await.unwrap();
    let physical = explain["physical_plan"].to_string();
    assert!(physical.contains("backend=main (sqlite) filtered scan") && physical.contains("title LIKE"), "{physical}");
    assert!(physical.contains("pushed=[price < Float64(30)]") || physical.contains("FilterExec"), "{physical}");
    assert_eq!(explain["storage_plan"]["entity_id"], json!("product"));
}

#[tokio::test]
async fn query_errors_suggest_the_right_name() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let ws = &ws;
    let err = |q: Value| async move {
        match ws.query_json("product", &q) {
            Err(e) => e.to_string(),
            Ok(query) => query.rows().await.unwrap_err().to_string(),
        }
    };
    let e = err(json!({"filters": {}})).await;
    assert!(e.contains("Unsupported JSON query key 'filters'") && e.contains("Did you mean 'filter'?"), "{e}");
    let e = err(json!({"filter": {"prise": 3}})).await;
    assert!(e.contains("Unknown field 'prise'") && e.contains("Did you mean 'price'?"), "{e}");
    let e = err(json!({"filter": {"price": {"$lte_": 3}}})).await;
    assert!(e.contains("Unknown operation '$lte_'") && e.contains("Did you mean 'lte'?"), "{e}");
    let e = err(json!({"filter": {"price": {"$lt": "cheap"}}})).await;
    assert!(e.contains("product.price") && e.contains("'cheap'"), "{e}");
    let e = err(json!({"limit": -1})).await;
    assert!(e.contains("limit must be non-negative"), "{e}");
    let e = err(json!({"select": ["name"], "aggregate": {"n": {"count": {}}}})).await;
    assert!(e.contains("do not combine aggregate() with select()"), "{e}");
    let e = err(json!({"filter": {"title.x": 1}})).await;
    assert!(e.contains("not a JSON path"), "{e}");
}
