//! `#[derive(Entity)]`: a Rust struct as a HeavenBase entity.
//!
//! ```ignore
//! /// A note (the doc comment is the entity's desc).
//! #[derive(heavenbase::Entity)]
//! struct Note {
//!     name: String,                         // the built-in name (object_id derives from it)
//!     title: String,                        // ShortText, required
//!     #[hb(long_text)] body: String,        // LongText
//!     #[hb(vector(384))] emb: Option<Vec<f32>>,
//!     #[hb(index)] price: f64,
//! }
//! ```
//!
//! Each field's logical type is read from its Rust type (the mapping is in
//! [`classify`]); `Option<T>` makes it optional, anything else required. A
//! type with no logical type is a compile error that names the field, the
//! type and what is supported. The generated code calls
//! `heavenbase::typed::column`, which turns the structs into Arrow columns and
//! back; the macro only decides which of its functions each field uses.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, LitStr, PathArguments, Type};

#[proc_macro_derive(Entity, attributes(hb))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// How a field's values are laid out, which picks the column functions used.
enum Layout {
    /// One value per row; `logical` is its LogicalType expression.
    Scalar { logical: Tokens },
    /// `Vec<u8>`: an Artifact.
    Bytes,
    /// `Vec<f32>` marked `#[hb(vector(n))]`.
    Vector { dim: usize },
    /// `Vec<T>` of a scalar T: an Array.
    List { item: Type, item_logical: Tokens },
    /// `#[hb(json)]`: any serde type, kept as a Json document.
    Json,
}

struct Field {
    ident: syn::Ident,
    column: String,
    /// The type inside `Option`, or the field's type.
    value_ty: Type,
    optional: bool,
    layout: Layout,
    desc: Option<String>,
    index: bool,
    unique: bool,
    search: Option<bool>,
    store: Option<String>,
}

/// Field attributes, `#[hb(...)]`.
#[derive(Default)]
struct FieldAttrs {
    text: Option<&'static str>,
    categorical: Option<Vec<String>>,
    vector: Option<usize>,
    json: bool,
    index: bool,
    unique: bool,
    search: Option<bool>,
    store: Option<String>,
    rename: Option<String>,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(input.generics.span(), "#[derive(Entity)] does not take generic structs"));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(ident.span(), "#[derive(Entity)] works on structs with named fields"));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(ident.span(), "#[derive(Entity)] works on structs with named fields"));
    };

    let mut entity_id = kebab(&ident.to_string());
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("hb")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("entity") {
                entity_id = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("unknown entity attribute; expected #[hb(entity = \"id\")]"))
            }
        })?;
    }
    let entity_desc = doc_comment(&input.attrs);

    let mut fields = Vec::new();
    for f in &named.named {
        let field_ident = f.ident.clone().expect("named field");
        let attrs = field_attrs(&f.attrs)?;
        let column = attrs.rename.clone().unwrap_or_else(|| field_ident.to_string().trim_start_matches("r#").to_string());
        let (optional, value_ty) = match generic_of(&f.ty, "Option") {
            Some(inner) => (true, inner.clone()),
            None => (false, f.ty.clone()),
        };
        let layout = classify(&column, &value_ty, &attrs)?;
        fields.push(Field {
            ident: field_ident,
            column,
            value_ty,
            optional,
            layout,
            desc: doc_comment(&f.attrs),
            index: attrs.index,
            unique: attrs.unique,
            search: attrs.search,
            store: attrs.store,
        });
    }
    for f in fields.iter().filter(|f| is_builtin(&f.column)) {
        if !matches!(&f.layout, Layout::Scalar { .. }) || !is_string(&f.value_ty) {
            return Err(syn::Error::new(
                f.ident.span(),
                format!("`{}` is the built-in text column of every entity: declare it as String or Option<String>", f.column),
            ));
        }
    }

    let hb = quote!(::heavenbase);
    let fields_struct = format_ident!("{}Fields", ident);
    let vis = &input.vis;

    let field_defs = fields.iter().filter(|f| !is_builtin(&f.column)).map(|f| {
        let column = &f.column;
        let logical = match &f.layout {
            Layout::Scalar { logical } => logical.clone(),
            Layout::Bytes => quote!(#hb::LogicalType::Artifact),
            Layout::Vector { dim } => quote!(#hb::LogicalType::vector(#dim)),
            Layout::List { item_logical, .. } => quote!(#hb::LogicalType::array_of(#item_logical)),
            Layout::Json => quote!(#hb::LogicalType::Json),
        };
        let mut def = quote!(#hb::FieldDef::new(#column, #logical));
        if !f.optional {
            def = quote!(#def.required());
        }
        if let Some(desc) = &f.desc {
            def = quote!(#def.desc(#desc));
        }
        if f.index {
            def = quote!(#def.index());
        }
        if f.unique {
            def = quote!(#def.unique());
        }
        if let Some(search) = f.search {
            def = quote!(#def.search(#search));
        }
        if let Some(store) = &f.store {
            def = quote!(#def.store(#store));
        }
        quote!(.field(#def))
    });
    let entity_desc = entity_desc.map(|d| quote!(.desc(#d)));
    let columns: Vec<&String> = fields.iter().map(|f| &f.column).collect();

    // Field references for filters: Field<T> of the value type.
    let ref_fields = fields.iter().map(|f| {
        let name = &f.ident;
        let ty = &f.value_ty;
        quote!(pub #name: #hb::typed::Field<#ty>)
    });
    let ref_values = fields.iter().map(|f| {
        let name = &f.ident;
        let column = &f.column;
        quote!(#name: #hb::typed::Field::new(#column))
    });

    let to_columns = fields.iter().map(|f| {
        let name = &f.ident;
        let column = &f.column;
        let ty = &f.value_ty;
        let values = if f.optional {
            quote!(items.iter().map(|item| item.#name.as_ref()))
        } else {
            quote!(items.iter().map(|item| ::core::option::Option::Some(&item.#name)))
        };
        let array = match &f.layout {
            Layout::Scalar { .. } => quote!(#hb::typed::column::scalar::<#ty, _>(#values)),
            Layout::Bytes => quote!(#hb::typed::column::bytes(#values)),
            Layout::Vector { dim } => quote!(#hb::typed::column::vector(#values, #dim)),
            Layout::List { item, .. } => quote!(#hb::typed::column::list::<#item, _>(#values)),
            Layout::Json => quote!(#hb::typed::column::json(#values, Self::ENTITY_ID, #column)?),
        };
        quote!((#column, #array))
    });

    let readers = fields.iter().map(|f| {
        let var = format_ident!("col_{}", f.ident);
        let column = &f.column;
        let ty = &f.value_ty;
        let arrow = match &f.layout {
            Layout::Scalar { .. } => quote!(<#ty as #hb::typed::column::Scalar>::arrow_type()),
            Layout::Bytes => quote!(#hb::typed::column::bytes_type()),
            Layout::Vector { dim } => quote!(#hb::typed::column::vector_type(#dim)),
            Layout::List { item, .. } => quote!(#hb::typed::column::list_type::<#item>()),
            Layout::Json => quote!(#hb::typed::column::json_type()),
        };
        quote!(let #var = reader.column(#column, &#arrow)?;)
    });
    let builds = fields.iter().map(|f| {
        let name = &f.ident;
        let var = format_ident!("col_{}", f.ident);
        let ty = &f.value_ty;
        let read = match &f.layout {
            Layout::Scalar { .. } => quote!(#var.scalar::<#ty>(row)?),
            Layout::Bytes => quote!(#var.bytes(row)?),
            Layout::Vector { .. } => quote!(#var.vector(row)?),
            Layout::List { item, .. } => quote!(#var.list::<#item>(row)?),
            Layout::Json => quote!(#var.json::<#ty>(row)?),
        };
        if f.optional { quote!(#name: #read) } else { quote!(#name: #var.required(#read, row)?) }
    });

    Ok(quote! {
        /// Typed references to the fields, for filters (`Entity::fields()`).
        #[allow(dead_code)]
        #vis struct #fields_struct {
            #(#ref_fields,)*
        }

        impl #hb::typed::Entity for #ident {
            const ENTITY_ID: &'static str = #entity_id;
            const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            type Fields = #fields_struct;

            fn entity_def() -> #hb::EntityDef {
                #hb::EntityDef::new(#entity_id) #entity_desc #(#field_defs)*
            }

            fn fields() -> #fields_struct {
                #fields_struct { #(#ref_values,)* }
            }

            fn to_batch(items: &[Self]) -> #hb::Result<#hb::typed::RecordBatch> {
                #hb::typed::column::batch(Self::ENTITY_ID, ::std::vec![#(#to_columns),*], items.len())
            }

            fn from_batch(batch: &#hb::typed::RecordBatch) -> #hb::Result<::std::vec::Vec<Self>> {
                let reader = #hb::typed::column::Reader::new(Self::ENTITY_ID, batch);
                #(#readers)*
                let mut out = ::std::vec::Vec::with_capacity(batch.num_rows());
                for row in 0..batch.num_rows() {
                    out.push(Self { #(#builds,)* });
                }
                ::core::result::Result::Ok(out)
            }
        }
    })
}

/// The logical type of a field from its Rust type (inside `Option`) and its
/// attributes; an unsupported type is an error that says what is supported.
fn classify(column: &str, ty: &Type, attrs: &FieldAttrs) -> syn::Result<Layout> {
    if attrs.json {
        return Ok(Layout::Json);
    }
    if let Some(dim) = attrs.vector {
        return match generic_of(ty, "Vec") {
            Some(item) if last_ident(item).as_deref() == Some("f32") => Ok(Layout::Vector { dim }),
            _ => Err(syn::Error::new(ty.span(), format!("field `{column}`: #[hb(vector({dim}))] takes Vec<f32>"))),
        };
    }
    if let Some(item) = generic_of(ty, "Vec") {
        if last_ident(item).as_deref() == Some("u8") {
            return Ok(Layout::Bytes);
        }
        return match scalar(item, &FieldAttrs::default()) {
            Some(Ok(item_logical)) => Ok(Layout::List { item: item.clone(), item_logical }),
            _ => Err(unsupported(column, ty)),
        };
    }
    match scalar(ty, attrs) {
        Some(Ok(logical)) => Ok(Layout::Scalar { logical }),
        Some(Err(message)) => Err(syn::Error::new(ty.span(), format!("field `{column}`: {message}"))),
        None => Err(unsupported(column, ty)),
    }
}

/// The LogicalType expression of a one-value type, None when it has none, an
/// error message when it has one but not as written.
fn scalar(ty: &Type, attrs: &FieldAttrs) -> Option<Result<Tokens, String>> {
    let hb = quote!(::heavenbase);
    let name = last_ident(ty)?;
    let text_attr = attrs.text.is_some() || attrs.categorical.is_some();
    let logical = match name.as_str() {
        "String" => {
            if let Some(values) = &attrs.categorical {
                quote!(#hb::LogicalType::categorical([#(#values),*]))
            } else {
                match attrs.text.unwrap_or("short_text") {
                    "long_text" => quote!(#hb::LogicalType::long_text()),
                    "medium_text" => quote!(#hb::LogicalType::medium_text()),
                    "identifier" => quote!(#hb::LogicalType::identifier()),
                    _ => quote!(#hb::LogicalType::short_text()),
                }
            }
        }
        _ if text_attr => return Some(Err(format!("text attributes take String, not `{name}`"))),
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" => quote!(#hb::LogicalType::Integer),
        "u64" | "usize" | "i128" | "u128" | "isize" => {
            return Some(Err(format!("`{name}` can hold values outside Integer (a signed 64-bit integer); use i64")));
        }
        "f32" | "f64" => quote!(#hb::LogicalType::Float),
        "bool" => quote!(#hb::LogicalType::Boolean),
        "DateTime" => quote!(#hb::LogicalType::Timestamp),
        "NaiveDate" => quote!(#hb::LogicalType::Date),
        "Duration" => quote!(#hb::LogicalType::Duration),
        "Value" => quote!(#hb::LogicalType::Json),
        _ => return None,
    };
    Some(Ok(logical))
}

fn unsupported(column: &str, ty: &Type) -> syn::Error {
    let written = quote!(#ty).to_string().replace(" < ", "<").replace(" >", ">").replace(" ,", ",");
    syn::Error::new(
        ty.span(),
        format!(
            "field `{column}`: HeavenBase has no logical type for `{written}`. Supported: String (ShortText; \
             #[hb(long_text)], #[hb(medium_text)], #[hb(identifier)], #[hb(categorical(\"a\", \"b\"))]), \
             i8..i64 and u8..u32 (Integer), f32 and f64 (Float), bool (Boolean), chrono::DateTime<Utc> \
             (Timestamp), chrono::NaiveDate (Date), std::time::Duration (Duration), serde_json::Value (Json), \
             Vec<u8> (Artifact), Vec<f32> with #[hb(vector(N))] (Vector), Vec<T> of those (Array), each \
             optional as Option<T>; #[hb(json)] keeps any serde type as Json"
        ),
    )
}

fn field_attrs(attrs: &[syn::Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("hb")) {
        attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            let word = path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match word.as_str() {
                "long_text" => out.text = Some("long_text"),
                "medium_text" => out.text = Some("medium_text"),
                "short_text" => out.text = Some("short_text"),
                "identifier" => out.text = Some("identifier"),
                "json" => out.json = true,
                "index" => out.index = true,
                "unique" => out.unique = true,
                "search" => {
                    out.search =
                        Some(if meta.input.peek(syn::Token![=]) { meta.value()?.parse::<syn::LitBool>()?.value } else { true })
                }
                "store" => out.store = Some(meta.value()?.parse::<LitStr>()?.value()),
                "rename" => out.rename = Some(meta.value()?.parse::<LitStr>()?.value()),
                "vector" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let dim: syn::LitInt = content.parse()?;
                    let dim = dim.base10_parse::<usize>()?;
                    if dim == 0 {
                        return Err(meta.error("a vector has at least one dimension"));
                    }
                    out.vector = Some(dim);
                }
                "categorical" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let values = content.parse_terminated(|p| p.parse::<LitStr>(), syn::Token![,])?;
                    out.categorical = Some(values.iter().map(LitStr::value).collect());
                }
                _ => {
                    return Err(meta.error(
                        "unknown field attribute; expected long_text, medium_text, short_text, identifier, \
                         categorical(\"a\", ...), vector(N), json, index, unique, search, store = \"backend\" or \
                         rename = \"column\"",
                    ));
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// `T` of `Wrapper<T>` when the type's last path segment is `wrapper`.
fn generic_of<'a>(ty: &'a Type, wrapper: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != wrapper {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(group) => last_ident(&group.elem),
        Type::Paren(paren) => last_ident(&paren.elem),
        _ => None,
    }
}

fn is_string(ty: &Type) -> bool {
    last_ident(ty).as_deref() == Some("String")
}

fn is_builtin(column: &str) -> bool {
    column == "object_id" || column == "name"
}

/// The `///` lines of an item, joined and trimmed.
fn doc_comment(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines.join(" ").trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The reference's `kebab(ClassName)`: a `-` before every uppercase letter after
/// the first, lowercased, `_` as `-` (`OakDesk` → `oak-desk`).
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    out.replace('_', "-")
}
