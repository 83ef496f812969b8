pub mod confirm;
pub mod layout;
pub mod notice;
