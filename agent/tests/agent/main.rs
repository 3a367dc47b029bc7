//! Integration tests of the agent: the real binary, real files, a real local HTTP
//! server and the real RabbitMQ on 127.0.0.1:5672. One test binary, as the house
//! style prefers; helpers in [`helpers`].

mod amqps;
mod cli;
mod helpers;
mod line_auth_http;
mod probes;
mod publish;
mod spool_kill;
mod spool_model;
