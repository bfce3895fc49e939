//! End-to-end tests of the mock server over real loopback HTTP: one test
//! binary (one link) with a module per provider plus behaviour and binary tests.

mod anthropic;
mod bedrock;
mod behaviour;
mod binary;
mod common;
mod faults;
mod openai;
