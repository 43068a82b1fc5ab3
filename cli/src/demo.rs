//! A small real-looking dataset: a product catalogue and its reviews.

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};
use serde_json::json;

use crate::Failure;
use crate::progress::Progress;

const PRODUCTS: usize = 2_000;
const REVIEWS: usize = 3_000;

/// A tiny deterministic generator, so every demo holds the same data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

/// Open (or create) the demo workspace on the embedded preset and load the data
/// when it is empty.
pub async fn ensure_demo(id: &str) -> Result<Workspace, Failure> {
    let ws = Workspace::open(id, Construction::preset("embedded")).await?;
    let product = EntityDef::new("product")
        .desc("Things the shop sells")
        .field(FieldDef::new("title", T::short_text()).desc("Display title"))
        .field(FieldDef::new("category", T::categorical(["desk", "chair", "lamp", "shelf", "rug"])))
        .field(FieldDef::new("price", T::Float).desc("Price in EUR"))
        .field(FieldDef::new("qty", T::Integer).default(0).desc("Units in stock"))
        .field(FieldDef::new("tags", T::array_of(T::short_text())))
        .field(FieldDef::new("added", T::Date));
    let review = EntityDef::new("review")
        .desc("What customers said")
        .field(FieldDef::new("product_id", T::identifier()).index().desc("object_id of the product"))
        .field(FieldDef::new("stars", T::Integer))
        .field(FieldDef::new("body", T::long_text()))
        .field(FieldDef::new("posted", T::Timestamp))
        .field(FieldDef::new("emb", T::vector(4)).desc("What the review is about: quality, delivery, looks, problems"));
    // A demo made by an earlier version keeps its entities as they are (its
    // reviews then have no `emb`; `hb ws drop demo` makes a new demo).
    let registered = ws.entities();
    for def in [product, review] {
        if !registered.contains(&def.entity_id) {
            ws.register(def, false).await?;
        }
    }
    if ws.count("product").await? > 0 {
        return Ok(ws);
    }
    let mut rng = Lcg(42);
    let woods = ["oak", "walnut", "birch", "pine", "ash", "teak"];
    let styles = ["Nordic", "Classic", "Compact", "Studio", "Loft", "Heritage"];
    let categories = ["desk", "chair", "lamp", "shelf", "rug"];
    let mut products: Vec<Row> = Vec::with_capacity(PRODUCTS);
    let mut ids = Vec::with_capacity(PRODUCTS);
    for i in 0..PRODUCTS {
        let (style, wood, category) = (rng.pick(&styles), rng.pick(&woods), rng.pick(&categories));
        let name = format!("{style} {wood} {category} #{i}");
        ids.push(heavenbase::catalog::derive_object_id("product", &name));
        products.push(
            json!({
                "name": name, "title": format!("{style} {category} in {wood}"), "category": category,
                "price": (rng.next() % 90_000) as f64 / 100.0 + 10.0, "qty": rng.next() % 50,
                "tags": [wood, style.to_lowercase()], "added": format!("2025-{:02}-{:02}", rng.next() % 12 + 1, rng.next() % 28 + 1),
            })
            .as_object()
            .expect("object")
            .clone(),
        );
    }
    let mut progress = Progress::new("demo", PRODUCTS + REVIEWS);
    ws.upsert_many("product", products).await?;
    progress.advance(PRODUCTS);
    // Two or three remarks a review, so full-text search has text to rank,
    // each with what it is about (quality, delivery, looks, problems): a
    // review's `emb` is its remarks' sum, normalized, for `near` and `hybrid`.
    let remarks: [(&str, [f32; 4]); 12] = [
        ("Solid and well made.", [1.0, 0.0, 0.0, 0.0]),
        ("Arrived late but works.", [0.2, 1.0, 0.0, 0.7]),
        ("Looks great in the study.", [0.0, 0.0, 1.0, 0.0]),
        ("Wobbles a little on a tiled floor.", [0.0, 0.0, 0.0, 1.0]),
        ("Worth every euro.", [0.8, 0.0, 0.2, 0.0]),
        ("The drawers stick in humid weather.", [0.0, 0.0, 0.0, 1.0]),
        ("Easy to assemble, the instructions were clear.", [0.7, 0.0, 0.0, 0.0]),
        ("The finish scratches easily.", [0.0, 0.0, 0.3, 1.0]),
        ("Sturdy enough for a heavy printer.", [1.0, 0.0, 0.0, 0.0]),
        ("Smaller than the photos suggest.", [0.0, 0.0, 0.6, 0.6]),
        ("The wood grain is beautiful.", [0.0, 0.0, 1.0, 0.0]),
        ("Delivery was quick and the packaging careful.", [0.0, 1.0, 0.0, 0.0]),
    ];
    let reviews: Vec<Row> = (0..REVIEWS)
        .map(|i| {
            let (product, stars) = (ids[(rng.next() as usize) % ids.len()].clone(), rng.next() % 5 + 1);
            let said: Vec<usize> = (0..2 + rng.next() % 2).map(|_| (rng.next() as usize) % remarks.len()).collect();
            let mut emb = [0f32; 4];
            for &r in &said {
                emb.iter_mut().zip(remarks[r].1).for_each(|(e, v)| *e += v);
            }
            let norm = emb.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::EPSILON);
            json!({
                "name": format!("review {i}"), "product_id": product, "stars": stars,
                "body": said.iter().map(|&r| remarks[r].0).collect::<Vec<_>>().join(" "),
                "posted": 1_735_689_600_000i64 + (rng.next() % 31_536_000) as i64 * 1000,
                "emb": emb.map(|v| v / norm),
            })
            .as_object()
            .expect("object")
            .clone()
        })
        .collect();
    ws.upsert_many("review", reviews).await?;
    progress.advance(REVIEWS);
    progress.finish();
    Ok(ws)
}
