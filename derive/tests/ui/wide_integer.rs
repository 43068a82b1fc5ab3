#[derive(heavenbase_derive::Entity)]
struct Counter {
    name: String,
    hits: u64,
}

fn main() {}
