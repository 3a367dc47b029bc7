//! Helpers for the end-to-end tests: real RabbitMQ, real SQLite and PostgreSQL, the
//! real service in-process on port 0.
//!
//! Isolation: every test gets its own RabbitMQ vhost (so the contract's fixed exchange
//! and queue names never collide between parallel tests) and its own database (a
//! fresh SQLite file, or a fresh PostgreSQL database), both removed when the test ends.
//!
//! [`alertmanager`] runs a real Alertmanager per test, for what fleetd sends it and for
//! the example route file in `deploy/`.

pub mod alertmanager;
pub mod app;
pub mod broker;
pub mod db;
pub mod reports;

pub use alertmanager::Alertmanager;
pub use app::TestApp;
pub use db::DbKind;
