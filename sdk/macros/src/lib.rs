//! `#[row_filter]`, `#[table_router]`, `#[shard_ddl_policy]`: keep the function as written
//! and export it through the plugin ABI (the `__export_*` macros of dm-plugin-sdk).

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

fn export(item: TokenStream, exporter: &str) -> TokenStream {
    let f = parse_macro_input!(item as ItemFn);
    let name = &f.sig.ident;
    let exporter = syn::Ident::new(exporter, proc_macro2::Span::call_site());
    quote! {
        #f
        ::dm_plugin_sdk::#exporter!(#name);
    }
    .into()
}

/// `fn(&RowChange) -> Verdict`: the plugin's row filter, called per batch of rows.
#[proc_macro_attribute]
pub fn row_filter(_attr: TokenStream, item: TokenStream) -> TokenStream {
    export(item, "__export_row_filter")
}

/// `fn(&TableRef) -> TableRef`: the plugin's table router, called once per table.
#[proc_macro_attribute]
pub fn table_router(_attr: TokenStream, item: TokenStream) -> TokenStream {
    export(item, "__export_table_router")
}

/// `fn(&LockInfo) -> Decision`: the plugin's shard DDL policy.
#[proc_macro_attribute]
pub fn shard_ddl_policy(_attr: TokenStream, item: TokenStream) -> TokenStream {
    export(item, "__export_shard_ddl_policy")
}
