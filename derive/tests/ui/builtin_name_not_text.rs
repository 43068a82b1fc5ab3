#[derive(heavenbase_derive::Entity)]
struct Ticket {
    name: i64,
}

fn main() {}
