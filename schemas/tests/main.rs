//! The schemas crate's tests over its committed files and its decoder
//! properties, as one test executable; each file beside this one is a module.

mod decode_props;
mod schema_files;
