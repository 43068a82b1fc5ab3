fn main() {
    prost_build::compile_protos(&["check.proto"], &["."]).expect("protoc (PROTOC) compiles check.proto");
}
