#[derive(heavenbase_derive::Entity)]
struct Note {
    #[hb(fulltext)]
    body: String,
}

fn main() {}
