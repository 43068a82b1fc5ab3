use std::collections::HashMap;

#[derive(heavenbase_derive::Entity)]
struct Inventory {
    name: String,
    counts: HashMap<String, u32>,
}

fn main() {}
