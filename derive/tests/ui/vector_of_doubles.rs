#[derive(heavenbase_derive::Entity)]
struct Doc {
    name: String,
    #[hb(vector(3))]
    emb: Vec<f64>,
}

fn main() {}
