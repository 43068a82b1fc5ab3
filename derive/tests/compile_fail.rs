//! A field type with no logical type, and attributes on the wrong type, are
//! compile errors that name the field, the type and what is supported.

#[test]
fn unsupported_fields_are_compile_errors_that_say_why() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
