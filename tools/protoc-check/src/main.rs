//! The generated type exists and encodes: protoc ran.
use prost::Message;

mod check {
    include!(concat!(env!("OUT_DIR"), "/check.rs"));
}

fn main() {
    let fragment = check::Fragment { id: 7, files: vec!["a.lance".into()] };
    assert_eq!(check::Fragment::decode(fragment.encode_to_vec().as_slice()).expect("decodes"), fragment);
    println!("protoc-check: generated and round-tripped check.Fragment");
}
