#![forbid(unsafe_code)]
// Leptos view types nest deeply; without erase_components (see Cargo.toml) the default
// limit is too low for the endpoint table.
#![recursion_limit = "512"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
