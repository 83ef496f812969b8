pub mod confirm;
pub mod layout;
